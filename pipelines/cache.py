"""Content-addressed stage cache: 8-bit stage outputs stored on disk under the hash of everything
that can change them.

A stage's key is the SHA-256 of a canonical JSON description: the method, its configuration, the
SHA-256 of its weights, the keys of its inputs and the code version. Inputs are themselves keys
(a stage output's key, or `image_key` of a dataset image), so a change anywhere upstream changes
every key downstream. Outputs are PNG files written atomically (temporary file + rename), so a run
killed at any moment leaves either a complete entry or none, and a rerun recomputes only what is
missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from cfanet.images import ImageFileError, quantize, read_image, write_image


def canonical_json(obj) -> str:
    """Stable JSON text: sorted keys, no whitespace, paths and tuples as plain values."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def stage_key(method: str, config: dict, weights_sha256: str | None, inputs: list[str], code_version: str) -> str:
    """The hex key of one stage run."""
    description = {"method": method, "config": config, "weights": weights_sha256, "inputs": inputs,
                   "code": code_version}
    return hashlib.sha256(canonical_json(description).encode()).hexdigest()


def image_key(image: torch.Tensor) -> str:
    """Key of an input image: SHA-256 of its 8-bit pixels and shape."""
    pixels = quantize(image)
    digest = hashlib.sha256(str(pixels.shape).encode())
    digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.hexdigest()


class StageCache:
    """Stage outputs on disk, by key: `<root>/<key[:2]>/<key>.png` plus `<key>.json` metadata."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.png", folder / f"{key}.json"

    def has(self, key: str) -> bool:
        image, meta = self._paths(key)
        return image.is_file() and meta.is_file()

    def get(self, key: str) -> torch.Tensor | None:
        """The cached float32 RGB (1, 3, H, W) output, or None when absent or unreadable."""
        image, meta = self._paths(key)
        if not (image.is_file() and meta.is_file()):
            return None
        try:
            return read_image(image)
        except ImageFileError:
            # A damaged entry (disk trouble): drop it so the stage is recomputed.
            image.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            return None

    def metadata(self, key: str) -> dict | None:
        _, meta = self._paths(key)
        try:
            return json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def put(self, key: str, output: torch.Tensor, metadata: dict) -> torch.Tensor:
        """Store an output (quantised to 8 bits, as stages are chained through 8-bit files);
        returns the stored 8-bit version so callers continue exactly as a cache hit would."""
        image, meta = self._paths(key)
        write_image(image, output)  # atomic
        fd, tmp = tempfile.mkstemp(prefix=f".{meta.name}.", suffix=".part", dir=meta.parent)
        with os.fdopen(fd, "w") as handle:
            handle.write(canonical_json(metadata))
        os.replace(tmp, meta)  # the JSON lands last: an entry counts only once both exist
        return read_image(image)
