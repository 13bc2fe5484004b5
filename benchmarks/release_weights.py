"""Seeded random weights of a method's official configuration, written in the container its
authors released, so that a benchmark runs the same loading path as the real checkpoints.

Speed does not depend on the weights' values; the container only decides which loading code runs.
The containers are those the models' tests write (and `../shared/reference/statedicts/` lists):

| method   | released file                              | container                                        |
| -------- | ------------------------------------------ | ------------------------------------------------ |
| DBPN     | `DBPN_x2.pth`                              | plain state dict saved from DataParallel (`module.` keys) |
| RCAN     | `RCAN_BIX2.pt`                             | plain state dict                                 |
| SRFBN    | `SRFBN_x2_BI.pth`                          | `SRSolver.save_checkpoint`: `state_dict` (`module.` keys), epoch, optimizer, records |
| SwinIR   | `001_classicalSR_DF2K_s64w8_SwinIR-M_x2.pth` | `{"params": state dict}`                       |
| MEF-Net  | `MEFNet_release.pt`                        | `Trainer._save_checkpoint`: `state_dict`, epoch, optimizer, losses (numpy scalars) |
| U2Fusion | `model.ckpt` (TensorFlow)                  | TensorFlow V2 checkpoint with the official variable names and HWIO kernels (`tf_checkpoint.write_checkpoint`) |
| CF-Net   | `model_x2.pth`                             | `{"model": state dict, "loss": [...]}`           |
| CFANet   | our trainer's `best.pt` (no release)        | `{"format", "version", "model", "task": {"cfanet": description}, scenes}` |

Any other deep method (a plugin, a `benchmark.toml` entry) gets a plain state dict, which every
loader of the project accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


def _plain(model, path: Path) -> Path:
    torch.save(model.network.state_dict(), path)
    return path


def _data_parallel(model) -> dict:
    return {f"module.{k}": v for k, v in model.network.state_dict().items()}


def _dbpn(model, path: Path) -> Path:
    torch.save(_data_parallel(model), path)
    return path


def _srfbn(model, path: Path) -> Path:
    torch.save({"epoch": 1000, "state_dict": _data_parallel(model),
                "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]}, "best_pred": 0.0, "best_epoch": 1000,
                "records": {"psnr": [0.0], "lr": [1e-4]}}, path)
    return path


def _swinir(model, path: Path) -> Path:
    torch.save({"params": model.network.state_dict()}, path)
    return path


def _mefnet(model, path: Path) -> Path:
    torch.save({"epoch": 99, "state_dict": model.network.state_dict(),
                "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]},
                "train_loss": [np.float64(0.0)], "test_results": [np.float64(0.0)]}, path)
    return path


def _u2fusion(model, path: Path) -> Path:
    """A TensorFlow checkpoint at the prefix `path` (`path.index`, `path.data-00000-of-00001`)."""
    from baselines.mef.tf_checkpoint import write_checkpoint
    from baselines.mef.u2fusion import tf_variable_name

    tensors = {}
    for key, value in model.network.state_dict().items():
        array = value.detach().cpu().numpy()
        tensors[tf_variable_name(key)] = array.transpose(2, 3, 1, 0) if array.ndim == 4 else array  # OIHW -> HWIO
    return write_checkpoint(path, tensors)


def _cfnet(model, path: Path) -> Path:
    torch.save({"model": model.network.state_dict(), "loss": [np.float64(0.0)]}, path)
    return path


def _cfanet(model, path: Path) -> Path:
    from cfanet.network import CHECKPOINT_FORMAT
    from cfanet.training.state import FORMAT, VERSION

    torch.save({"format": FORMAT, "version": VERSION, "model": model.network.state_dict(),
                "task": {"kind": "joint", CHECKPOINT_FORMAT: model.describe()},
                "train_scenes": [], "val_scenes": []}, path)
    return path


RELEASE_CONTAINERS: dict[str, Callable[[object, Path], Path]] = {
    "DBPN": _dbpn, "RCAN": _plain, "SRFBN": _srfbn, "SwinIR": _swinir,
    "MEF-Net": _mefnet, "U2Fusion": _u2fusion, "CF-Net": _cfnet, "CFANet": _cfanet,
}


def _writer(spec) -> Callable[[object, Path], Path] | None:
    """The released container of `spec`'s class (a renamed variant such as `[methods."CFANet-raw"]`
    shares its class's container), or None."""
    from pipelines.registry import builtin_methods

    for builtin in builtin_methods():
        if builtin.cls is spec.cls and builtin.name in RELEASE_CONTAINERS:
            return RELEASE_CONTAINERS[builtin.name]
    return None


def container_of(spec) -> str:
    """How `spec`'s weights are written: "release" (its authors' container) or "plain state dict"."""
    return "release" if _writer(spec) is not None else "plain state dict"


def write_release_weights(spec, scale: int, path: Path, seed: int = 0) -> Path:
    """Seeded random weights of `spec`'s official configuration at `scale`, in its released container
    (a plain state dict for methods without one) at `path`; returns the path the profile names (for
    U2Fusion the TensorFlow prefix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    model = spec.create(scale, "official", seed=seed)
    return (_writer(spec) or _plain)(model, path)
