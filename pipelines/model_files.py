"""Checkpoint files the harness writes itself (demo weights): the state dict plus our metadata.

Kept apart from weights resolution (`pipelines.weights`) and demo training
(`pipelines.demo_training`), which both use it, so that neither imports the other.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

META_KEY = "cfanet_bench"


def save_model_checkpoint(network: torch.nn.Module, path: Path, metadata: dict) -> Path:
    """Save `network`'s state dict with our metadata (method, size, scale, how it was trained),
    atomically. Equal weights and metadata give equal bytes (saved through a file handle, so the
    archive inside is not named after the temporary file), hence equal cache keys on any machine."""
    from cfanet.training.state import save_atomic

    return save_atomic({"state_dict": network.state_dict(), META_KEY: json.dumps(metadata, sort_keys=True)}, path)


def checkpoint_metadata(path: Path) -> dict:
    """Our metadata stored in a checkpoint by `save_model_checkpoint`, or {} for other files."""
    from cfanet.checkpoint import read_checkpoint

    obj = read_checkpoint(path)
    raw = obj.get(META_KEY) if isinstance(obj, dict) else None
    return json.loads(raw) if isinstance(raw, str) else {}


def trained_scenes(path: Path) -> dict[str, list[str]]:
    """The scenes a checkpoint records having been trained on: `{"train": [...], "val": [...]}`
    from a training checkpoint of `cfanet.training` (`train_scenes`, `val_scenes`: `best.pt`,
    `last.pt`) or from our metadata; {} when the file records none (official releases) or is not a
    PyTorch file (U2Fusion's TensorFlow checkpoint)."""
    from cfanet.checkpoint import CheckpointError, read_checkpoint

    try:
        obj = read_checkpoint(path)
    except CheckpointError:
        return {}
    if not isinstance(obj, dict):
        return {}
    raw = obj.get(META_KEY)
    meta = json.loads(raw) if isinstance(raw, str) else {}
    found = {}
    for role in ("train", "val"):
        names = obj.get(f"{role}_scenes", meta.get(f"{role}_scenes"))
        if isinstance(names, (list, tuple)) and names:
            found[role] = [str(n) for n in names]
    return found
