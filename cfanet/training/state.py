"""Training checkpoints: written atomically, read safely, holding everything a resume needs.

A checkpoint is a dict saved with `torch.save`:

- `model`: the network's state dict (the key `cfanet.checkpoint.unwrap_state_dict` finds, so a
  model's `from_checkpoint` loads our files as it loads official ones);
- `optimizer`, `scheduler`: their state dicts (last checkpoints only);
- `rng`: the states of torch (CPU and every CUDA device), numpy's global generator and Python's
  `random` (last checkpoints only; the patch sampler is stateless, see `patches`);
- `step`, `epoch`, `history` (one record per validation), `losses` (one per step), `best`;
- `config` (the TrainingConfig as a dict) and `task` (the task's own description);
- `format` / `version`, to refuse files of another kind with a clear message.

Only tensors and plain Python values are stored, so `read_checkpoint` (`weights_only=True`)
reads them back.
"""

from __future__ import annotations

import os
import random
import tempfile

from pathlib import Path

import numpy as np
import torch

from cfanet.atomic import write_text_atomic  # noqa: F401  (re-exported for the trainer)
from cfanet.checkpoint import CheckpointError, read_checkpoint

FORMAT = "cfanet-bench training checkpoint"
VERSION = 1


def save_atomic(obj, path: str | os.PathLike) -> Path:
    """`torch.save(obj)` to `path` through a temporary file in the same folder and a rename, so a
    killed process leaves either the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def capture_rng() -> dict:
    """The global random states of torch (CPU, all CUDA devices), numpy and Python."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
    }


def restore_rng(state: dict) -> None:
    """Set the global random states captured by `capture_rng`. CUDA states are restored when the
    same number of devices is visible; otherwise they are left as they are (a CPU resume of a
    GPU run continues, only not bit-for-bit)."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global generator and Python's `random`."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def load_training_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by the trainer; CheckpointError for other or damaged files."""
    obj = read_checkpoint(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a cfanet-bench training checkpoint")
    if obj.get("version") != VERSION:
        raise CheckpointError(f"{path}: training checkpoint version {obj.get('version')!r}, this code reads {VERSION}")
    return obj
