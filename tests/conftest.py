"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the shared real-image data (mefb/, sice400/, ...); skips the test when absent.

    Taken from $CFANET_SHARED_DATA, else `<repo>/../shared/data`.
    """
    root = Path(os.environ.get("CFANET_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
    if not root.is_dir():
        pytest.skip(f"shared data not found at {root} (set CFANET_SHARED_DATA)")
    return root
