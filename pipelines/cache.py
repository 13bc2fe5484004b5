"""Content-addressed stage cache: 8-bit stage outputs stored on disk under the hash of everything
that can change them.

A stage's key is the SHA-256 of a canonical JSON description: the method, its configuration, the
SHA-256 of its weights, the keys of its inputs and the code version. Inputs are themselves keys
(a stage output's key, or `image_key` of a dataset image), so a change anywhere upstream changes
every key downstream. Outputs are PNG files written atomically (temporary file + rename), so a run
killed at any moment leaves either a complete entry or none, and a rerun recomputes only what is
missing.

Several processes may share one cache (two `run-all` on one machine, or on machines sharing a
file system that supports `flock`): temporary files have unique names (`mkstemp`), renames are
atomic, and `lock(key)` serialises the computation of a stage so that a second process waits for
the first one's entry instead of computing it again. Temporary files left by killed processes are
never read (an entry is its final `.png` and `.json` names only) and are removed by
`remove_stale_temporaries` once they are old enough not to belong to a live writer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from cfanet.atomic import write_text_atomic
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


def remove_stale_temporaries(folder: str | os.PathLike, older_than: float = 3600.0, recursive: bool = True) -> int:
    """Delete temporary files (`.*.part`, as `write_text_atomic`, `write_image` and the publishing
    of images name them) older than `older_than` seconds under `folder`: they were left by killed
    processes (a live writer's temporary file exists for milliseconds). Returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed, now = 0, time.time()
    for path in (folder.rglob(".*.part") if recursive else folder.glob(".*.part")):
        try:
            if path.is_file() and now - path.stat().st_mtime > older_than:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass
    return removed


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive advisory lock (`flock`) on `path` (created when absent) for the block.

    The kernel releases it when the holder exits, however it exits (SIGKILL included), so a killed
    process never leaves a stale lock. Where `fcntl` does not exist (Windows) this is a no-op and
    atomic renames alone keep the files whole.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class StageCache:
    """Stage outputs on disk, by key: `<root>/<key[:2]>/<key>.png` plus `<key>.json` metadata."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.png", folder / f"{key}.json"

    def lock(self, key: str):
        """Context manager serialising work on `key` across processes (one lock file per key prefix,
        so at most 256 small files; a process holds one at a time, so no deadlock is possible)."""
        return file_lock(self.root / key[:2] / ".lock")

    def keys(self) -> list[str]:
        """Keys of the complete entries (both the image and its metadata), sorted; temporary files
        are never counted."""
        return sorted(p.stem for p in self.root.glob("??/*.json")
                      if not p.name.startswith(".") and (p.parent / f"{p.stem}.png").is_file())

    def temporaries(self) -> list[Path]:
        """Temporary files (`.*.part`) in the cache: writes in progress, or left by killed processes."""
        return sorted(self.root.glob("??/.*.part"))

    def remove_stale_temporaries(self, older_than: float = 3600.0) -> int:
        """Delete temporary files older than `older_than` seconds (left by killed processes; a live
        writer's temporary file exists for milliseconds). Returns how many were removed."""
        return remove_stale_temporaries(self.root, older_than)

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
        write_image(image, output)  # atomic (unique temporary file + rename)
        write_text_atomic(meta, canonical_json(metadata))  # lands last: an entry counts only once both exist
        return read_image(image)
