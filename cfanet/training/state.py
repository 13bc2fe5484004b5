"""Training checkpoints: written atomically, read safely, holding everything a resume needs.

A checkpoint is a dict saved with `torch.save`:

- `model`: the network's state dict (the key `cfanet.checkpoint.unwrap_state_dict` finds, so a
  model's `from_checkpoint` loads our files as it loads official ones);
- `optimizer`, `scheduler`: their state dicts (last checkpoints only);
- `rng`: the states of torch (CPU, and the training's CUDA device), numpy's global generator and
  Python's `random` (last checkpoints only; the patch sampler is stateless, see `patches`); of
  rank 0 in a distributed run, whose every rank's states are in `rng_by_rank`;
- `world_size`: the number of processes that trained (1 for a single process); `scaler`: the fp16
  gradient scaler's state (precision "fp16" only);
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


def capture_rng(device: torch.device | str | None = None) -> dict:
    """The global random states of torch (CPU and CUDA), numpy and Python.

    CUDA: with a `device`, only that device's state when it is a CUDA device ("cuda_device" says
    which) and none for another device, so that a process never initialises GPUs it does not
    use (under torchrun each GPU belongs to another process); without, every visible device's."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state()}
    device = torch.device(device) if device is not None else None
    if device is None:
        state["cuda"] = list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else []
    elif device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        state["cuda"], state["cuda_device"] = [torch.cuda.get_rng_state(index)], index
    else:
        state["cuda"] = []
    state["numpy"] = {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    state["python"] = {"version": version, "state": list(internal), "gauss_next": gauss_next}
    return state


def restore_rng(state: dict, device: torch.device | str | None = None) -> None:
    """Set the global random states captured by `capture_rng`. CUDA, with a CUDA `device`: the
    state saved for one device (`capture_rng(device)`) goes onto `device`, of a file holding every
    device's states the one of `device`'s index; without a `device`, states of every device are
    restored when as many devices are visible. Otherwise CUDA is left as it is (a CPU resume of a
    GPU run continues, only not bit-for-bit)."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    device = torch.device(device) if device is not None else None
    if cuda and torch.cuda.is_available():
        if device is not None and device.type == "cuda":
            index = device.index if device.index is not None else torch.cuda.current_device()
            if "cuda_device" in state:
                torch.cuda.set_rng_state(cuda[0], index)
            elif index < len(cuda):
                torch.cuda.set_rng_state(cuda[index], index)
        elif device is None and "cuda_device" not in state and torch.cuda.device_count() == len(cuda):
            torch.cuda.set_rng_state_all(cuda)
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


def rank_seed(seed: int, rank: int, *extra: int) -> int:
    """The seed of the global RNGs of process `rank` of a run seeded `seed`: `seed` itself for rank 0
    (a single-process run is seeded as it always was), an independent stream for the other ranks
    (so that random layers such as dropout draw different numbers on each rank's rows); `extra`
    (e.g. the step of a resume) selects another stream."""
    if rank == 0 and not extra:
        return seed
    return int(np.random.SeedSequence([seed, rank, *extra]).generate_state(1)[0])


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
