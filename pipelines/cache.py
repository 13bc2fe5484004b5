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

Every entry is verified when it is read. `put` stores the SHA-256 of the PNG bytes (`png_sha256`)
and the key in the entry's metadata; `has` and `get` check both (hashing the file's bytes, which
`get` reads anyway; a verified entry is remembered by its files' inode, size and times, so a run
hashes each entry once). An entry whose image no longer matches its checksum (a published hard link
drawn on, another PNG copied over it, disk trouble), whose metadata is unreadable or names another
key, or whose image does not decode is dropped with a `CacheIntegrityWarning` naming the key and
the file, and counts as missing: the runner then recomputes it in the same run. Entries written
before checksums existed (no `png_sha256`) are accepted as they are, and dropped when they do not
decode.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from cfanet.atomic import write_bytes_atomic, write_text_atomic
from cfanet.images import ImageFileError, array_to_tensor, encode_png, quantize, read_image  # noqa: F401 - encode_png re-exported


class CacheIntegrityWarning(UserWarning):
    """A cache entry failed its integrity check and was dropped (it is computed again)."""


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




def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
        self._verified: dict[str, tuple] = {}  # key -> file signatures when last verified

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

    # -- integrity ---------------------------------------------------------------------------------

    @staticmethod
    def _signature(path: Path) -> tuple | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _check(self, key: str, image: Path, meta: Path) -> tuple[bytes | None, str | None, tuple, bool]:
        """Read and check one entry: (PNG bytes or None, why it is damaged or None, signatures of
        the files as read, whether a checksum was checked). Bytes None and reason None: the entry
        is absent."""
        signature = (self._signature(image), self._signature(meta))
        if None in signature:
            return None, None, signature, False
        try:
            text = meta.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None, None, signature, False
        except (OSError, UnicodeDecodeError) as exc:
            return None, f"metadata unreadable ({exc})", signature, False
        try:
            info = json.loads(text)
        except ValueError:
            return None, "metadata is not valid JSON", signature, False
        if not isinstance(info, dict):
            return None, "metadata is not a JSON object", signature, False
        try:
            data = image.read_bytes()
        except FileNotFoundError:
            return None, None, signature, False
        except OSError as exc:
            return None, f"image unreadable ({exc.strerror or exc})", signature, False
        if "key" in info and info["key"] != key:
            return None, f"metadata belongs to another key ({info['key']!r})", signature, False
        expected = info.get("png_sha256")
        if expected is not None and sha256_hex(data) != expected:
            return None, "image does not match its checksum (changed after it was stored)", signature, False
        return data, None, signature, expected is not None

    def _drop(self, key: str, image: Path, meta: Path, reason: str, signature: tuple) -> None:
        """Remove a damaged entry (unless a writer replaced its files meanwhile) and warn."""
        if (self._signature(image), self._signature(meta)) == signature:
            image.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
        self._verified.pop(key, None)
        warnings.warn(f"stage cache entry {key} ({image}) is damaged: {reason}; dropped, it is computed again",
                      CacheIntegrityWarning, stacklevel=3)

    def _read_verified(self, key: str) -> tuple[bytes | None, bool]:
        """The entry's PNG bytes when it is present and passes its checksum (with whether it had
        one: entries from before checksums have none), else None; a damaged entry is
        dropped (with a warning) and gives None. A failed check is repeated a moment later when the
        files changed meanwhile (a concurrent writer between its image and its metadata)."""
        image, meta = self._paths(key)
        for _ in range(3):
            data, reason, signature, checked = self._check(key, image, meta)
            if reason is None:
                if data is not None:
                    self._verified[key] = signature
                return data, checked
            time.sleep(0.05)
            if (self._signature(image), self._signature(meta)) == signature:
                break  # still the files that failed: damaged, not a write in progress
        self._drop(key, image, meta, reason, signature)
        return None, False

    def verify(self, key: str) -> bool:
        """True when the entry is present and intact (checksum, metadata); a damaged entry is
        dropped with a `CacheIntegrityWarning` and gives False, so the runner recomputes it. Hashes
        the image once per process while its files stay unchanged."""
        image, meta = self._paths(key)
        known = self._verified.get(key)
        if known is not None and known == (self._signature(image), self._signature(meta)):
            return True
        return self._read_verified(key)[0] is not None

    def has(self, key: str) -> bool:
        """True when a complete and intact entry exists (see `verify`)."""
        image, meta = self._paths(key)
        if not (image.is_file() and meta.is_file()):
            return False
        return self.verify(key)

    def get(self, key: str) -> torch.Tensor | None:
        """The cached float32 RGB (1, 3, H, W) output, or None when absent, unreadable or damaged
        (a damaged entry is dropped, with a `CacheIntegrityWarning` naming the key and file)."""
        image, meta = self._paths(key)
        if not (image.is_file() and meta.is_file()):
            return None
        data, checked = self._read_verified(key)
        if data is None:
            return None
        if checked:  # exactly the bytes `put` encoded: 8-bit BGR, decoded from what was hashed
            array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if array is not None and array.dtype == np.uint8:
                return array_to_tensor(np.ascontiguousarray(array[:, :, ::-1]))
        try:  # an entry from before checksums: decoded by the general (quiet) reader
            return read_image(image)
        except ImageFileError as exc:
            self._drop(key, image, meta, exc.reason, (self._signature(image), self._signature(meta)))
            return None

    def metadata(self, key: str) -> dict | None:
        _, meta = self._paths(key)
        try:
            return json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def put(self, key: str, output: torch.Tensor, metadata: dict) -> torch.Tensor:
        """Store an output (quantised to 8 bits, as stages are chained through 8-bit files) with the
        SHA-256 of its PNG bytes and its key in the metadata; returns the stored 8-bit version so
        callers continue exactly as a cache hit would."""
        image, meta = self._paths(key)
        data, pixels = encode_png(output)
        write_bytes_atomic(image, data)  # atomic (unique temporary file + rename)
        record = {**metadata, "key": key, "png_sha256": sha256_hex(data)}
        write_text_atomic(meta, canonical_json(record))  # lands last: an entry counts only once both exist
        self._verified.pop(key, None)
        return array_to_tensor(pixels)
