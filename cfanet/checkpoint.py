"""Checkpoint files -> state dicts, and strict loading with errors that name every mismatch.

Every model in the project loads its weights through `load_weights`. Files are read with
`torch.load(weights_only=True)`, so no arbitrary object is ever unpickled; the only extra types
admitted are numpy scalars and dtypes, which training checkpoints such as MEF-Net's and CF-Net's
store next to the weights (a plain `weights_only=True` load refuses them).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

# Container keys the official releases use, in order of preference: EMA weights win over raw ones.
CONTAINER_KEYS = ("params_ema", "params", "state_dict", "model", "net", "generator")
_PREFIXES = ("module.",)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not fit the model; the message names the file."""


class CheckpointMismatchError(CheckpointError):
    """A state dict does not match a model: lists missing, unexpected and mis-shaped keys."""

    def __init__(self, source: str, missing: list[str], unexpected: list[str],
                 mis_shaped: list[tuple[str, tuple, tuple]]):
        self.source, self.missing, self.unexpected, self.mis_shaped = source, missing, unexpected, mis_shaped
        lines = [f"{source}: the weights do not match the model"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): " + ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else ""))
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): " + ", ".join(unexpected[:20]) + (" ..." if len(unexpected) > 20 else ""))
        for name, got, want in mis_shaped[:20]:
            lines.append(f"  shape mismatch for {name}: checkpoint {list(got)}, model {list(want)}")
        if len(mis_shaped) > 20:
            lines.append(f"  ... and {len(mis_shaped) - 20} more shape mismatches")
        super().__init__("\n".join(lines))


def _numpy_safe_globals() -> list:
    """Numpy reconstruction helpers that can only build scalars and dtypes (no code execution)."""
    core = getattr(np, "_core", None) or getattr(np, "core")
    scalar = core.multiarray.scalar
    # Pickles name the scalar constructor by the module path of the numpy that wrote them:
    # `numpy.core` before numpy 2, `numpy._core` after; admit it under both names.
    allowed = [np.dtype, (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]
    allowed.extend(getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith("DType"))
    return allowed


# What the weights-only unpickler says when a pickle asks for a global, call or object it does not
# admit: a hostile or foreign pickle (refused), as opposed to bytes that are not a pickle at all.
_REFUSAL_MARKERS = ("unrecognized function", "create new object", "Can only build",
                    "persistent_load", "persistent id", "must be imported to load")


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """Load a checkpoint file safely (`weights_only=True`, numpy scalars admitted); returns its object.

    Every failure is a `CheckpointError` naming the file: a pickle holding objects other than
    tensors, containers and numpy scalars is refused (never executed); any other failure of
    `torch.load` (random or corrupt bytes, a truncated file) says the file is not a PyTorch checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        with open(path, "rb") as handle:
            empty = not handle.read(1)
    except OSError as exc:
        raise CheckpointError(f"{path}: checkpoint file cannot be read ({exc.strerror or exc})") from exc
    if empty:
        raise CheckpointError(f"{path}: checkpoint file is empty")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _unpickler_detail(exc)
        if _is_refusal(detail):
            raise CheckpointError(f"{path}: refused to unpickle (it holds objects other than tensors, "
                                  f"containers and numpy scalars): {detail}") from exc
        raise CheckpointError(_not_a_checkpoint(path, exc)) from exc
    except RuntimeError as exc:
        if "cuda" in str(exc).lower() and "deserialize" in str(exc).lower():  # a device problem, not the file's
            raise CheckpointError(f"{path}: {' '.join(str(exc).split())}") from exc
        raise CheckpointError(_not_a_checkpoint(path, exc)) from exc
    except Exception as exc:  # noqa: BLE001 - random bytes fail anywhere (IndexError, KeyError, struct.error...)
        raise CheckpointError(_not_a_checkpoint(path, exc)) from exc


def _is_refusal(detail: str) -> bool:
    """The unpickler refused a named global or a call/object it does not admit (a hostile or foreign
    pickle), rather than stumbling on bytes that are no pickle (random bytes can also spell the
    GLOBAL opcode, but seldom followed by an identifier)."""
    if "GLOBAL" in detail:
        return re.search(r"GLOBAL [A-Za-z_][\w.]* (was not an allowed|whose module)", detail) is not None
    return any(marker in detail for marker in _REFUSAL_MARKERS)


def _unpickler_detail(exc: BaseException) -> str:
    """The weights-only unpickler's own reason, without PyTorch's paragraph around it."""
    detail = " ".join(str(exc).split())
    for marker in ("WeightsUnpickler error:", "got the file from a trusted source."):
        if marker in detail:
            reason = detail.split(marker, 1)[1].split("Check the documentation of torch.load")[0].strip(" ;.")
            return reason or detail
    return detail


def _not_a_checkpoint(path: Path, exc: BaseException) -> str:
    detail = _unpickler_detail(exc)
    if len(detail) > 200:
        detail = detail[:200] + " ..."
    return (f"{path}: not a PyTorch checkpoint (random or corrupt bytes?): torch.load failed with "
            f"{type(exc).__name__}" + (f": {detail}" if detail else ""))


def _is_state_dict(obj) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def unwrap_state_dict(obj, key: str | None = None, source: str = "<checkpoint>") -> dict[str, torch.Tensor]:
    """Find the tensor dict inside a checkpoint container and strip `module.` prefixes.

    With `key`, that entry is used; otherwise the first of `CONTAINER_KEYS` that holds a state dict,
    or the object itself if it is one.
    """
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            found = sorted(obj) if isinstance(obj, Mapping) else type(obj).__name__
            raise CheckpointError(f"{source}: no entry {key!r} in the checkpoint (found: {found})")
        obj = obj[key]
    elif not _is_state_dict(obj):
        inner = next((obj[k] for k in CONTAINER_KEYS if isinstance(obj, Mapping) and _is_state_dict(obj.get(k))), None)
        if inner is None:
            found = sorted(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
            raise CheckpointError(f"{source}: no state dict found (looked for the file itself and the entries "
                                  f"{', '.join(CONTAINER_KEYS)}; found: {found})")
        obj = inner
    if not _is_state_dict(obj):
        raise CheckpointError(f"{source}: entry is not a mapping of parameter names to tensors")
    return {_strip_prefixes(k): v for k, v in obj.items()}


def _strip_prefixes(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix):], True
    return name


def check_state_dict(model_state: Mapping[str, torch.Tensor], weights: Mapping[str, torch.Tensor],
                     source: str = "<checkpoint>", ignore: Iterable[str] = ()) -> None:
    """Raise `CheckpointMismatchError` unless `weights` has exactly the model's keys and shapes."""
    ignored = set(ignore)
    want = {k: tuple(v.shape) for k, v in model_state.items() if k not in ignored}
    got = {k: tuple(v.shape) for k, v in weights.items() if k not in ignored}
    missing = sorted(set(want) - set(got))
    unexpected = sorted(set(got) - set(want))
    mis_shaped = [(k, got[k], want[k]) for k in sorted(set(want) & set(got)) if got[k] != want[k]]
    if missing or unexpected or mis_shaped:
        raise CheckpointMismatchError(source, missing, unexpected, mis_shaped)


def load_weights(model: torch.nn.Module, path: str | os.PathLike, key: str | None = None,
                 ignore: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """Load a checkpoint file into `model` strictly; returns the state dict that was loaded.

    `ignore` names buffers that official files omit or carry but the computation does not use
    (each model declares its own); everything else must match in name and shape.
    """
    source = str(path)
    weights = unwrap_state_dict(read_checkpoint(path), key=key, source=source)
    ignored = set(ignore)
    check_state_dict(model.state_dict(), weights, source=source, ignore=ignored)
    model.load_state_dict({k: v for k, v in weights.items() if k not in ignored}, strict=not ignored)
    return weights


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes (the identity of a weights file in caches and manifests)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
