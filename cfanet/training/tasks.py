"""What the trainer optimises: the `TrainingTask` protocol and adapters for the model kinds.

The trainer knows no model. A task gives it the module to optimise, a loss on a patch batch and
a prediction for validation. The adapters here take model objects by duck typing, so the
foundation never imports `baselines/`:

- `JointTask(model)`: joint fusion + SR models (CF-Net, CFANet): anything with `.network`,
  `.scale`, `.iteration_outputs(over, under)` (all outputs, differentiable, RGB [0, 1]) and
  `.fuse_upscale(over, under)`. Loss: the coupled SSIM loss of CF-Net / the CFANet paper
  (Sec. 2.3), `cfanet.losses.coupled_ssim_loss`, on [0, 1] with data range 1 (the same as
  CF-Net's data range 255 on [0, 255]).
- `SRTask(model)`: single-image SR models behind the SuperResolver interface (`.network`,
  `.scale`, `.forward_protocol(lr)`, `.upscale(lr)`). Trained on the LR/HR pairs of both
  exposures of each patch (each exposure is one SR sample, as SR+MEF pipelines use the model);
  loss: L1 between `forward_protocol(lr)` and the HR exposure (the loss of EDSR, RCAN, D-DBPN,
  SwinIR; SRFBN's loss over all its feedback steps is not reproduced: the last step is trained).
  Its validation prediction upsamples each exposure and averages the two, only to give the
  validation curve a number on the fused ground truth (an SR model's benchmark score comes from
  the SR+MEF pipelines).

MEF tasks (MEF-Net's MEF-SSIM loss on HR exposure pairs) are not written yet; `PatchSampler`
already provides their patches (`ROLES_BY_KIND["mef"]`).
"""

from __future__ import annotations

import contextlib
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from cfanet.data.scene import Scene
from cfanet.losses import CoupledLossWeights, coupled_ssim_loss
from cfanet.training.config import TrainingError
from cfanet.training.patches import PatchBatch


@runtime_checkable
class TrainingTask(Protocol):
    """What the trainer needs from a model.

    - `kind`: "joint", "sr" or "mef": which images each patch batch holds (`ROLES_BY_KIND`);
    - `module`: the nn.Module whose parameters are optimised (already on its device);
    - `scale`: the SR factor, which must match the training scenes';
    - `loss(batch)`: scalar loss tensor, differentiable in `module`'s parameters, on a batch on
      the module's device (the trainer may run it under bf16 autocast: compute losses in fp32);
    - `predict(scene)`: the fused HR image (1, 3, s*H, s*W) in [0, 1] for validation;
    - `config()`: a JSON-able dict describing the task, saved into checkpoints.
    """

    kind: str

    @property
    def module(self) -> nn.Module: ...

    @property
    def scale(self) -> int: ...

    def loss(self, batch: PatchBatch) -> torch.Tensor: ...

    def predict(self, scene: Scene) -> torch.Tensor: ...

    def config(self) -> dict: ...


def full_precision(device: torch.device):
    """A region where autocast is off (losses and metrics in fp32 even inside a bf16 step)."""
    if device.type in ("cuda", "cpu"):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def _require(model, attributes: tuple[str, ...], task: str) -> None:
    missing = [a for a in attributes if not hasattr(model, a)]
    if missing:
        raise TrainingError(f"{task} needs a model with {', '.join(attributes)}; "
                            f"{type(model).__name__} lacks {', '.join(missing)}")


def _model_name(model) -> str:
    return str(getattr(model, "name", type(model).__name__))


def _description(model) -> dict:
    """`{key: model.describe()}` for models that describe themselves (what rebuilds them from a
    checkpoint), under the model's name lower-cased without punctuation: the key its
    `from_checkpoint` looks for in a container's `task` entry (CFANet: "cfanet"). {} otherwise."""
    describe = getattr(model, "describe", None)
    if not callable(describe):
        return {}
    key = "".join(c for c in _model_name(model).lower() if c.isalnum())
    return {key: describe()}


def _num_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class JointTask:
    """Joint fusion + SR training with the coupled SSIM loss (see the module docstring)."""

    kind = "joint"

    def __init__(self, model, weights: CoupledLossWeights | None = None, win_size: int = 7):
        _require(model, ("network", "scale", "iteration_outputs", "fuse_upscale"), "JointTask")
        self.model, self.win_size = model, win_size
        self.weights = weights or getattr(model, "loss_weights", None) or CoupledLossWeights()

    @property
    def module(self) -> nn.Module:
        return self.model.network

    @property
    def scale(self) -> int:
        return int(self.model.scale)

    def loss(self, batch: PatchBatch) -> torch.Tensor:
        outputs_over, outputs_under = self.model.iteration_outputs(batch.over, batch.under)
        with full_precision(batch.gt.device):
            return coupled_ssim_loss([o.float() for o in outputs_over], [u.float() for u in outputs_under],
                                     batch.gt_over, batch.gt_under, batch.gt, self.weights,
                                     data_range=1.0, win_size=self.win_size)

    def predict(self, scene: Scene) -> torch.Tensor:
        return self.model.fuse_upscale(scene.over, scene.under)

    def config(self) -> dict:
        w = self.weights
        return {"kind": self.kind, "model": _model_name(self.model), "scale": self.scale,
                "loss": "coupled SSIM (CF-Net train.py; CFANet Sec. 2.3)", "ssim_window": self.win_size,
                "loss_weights": {"over": w.over, "under": w.under,
                                 "iterations": list(w.iterations) if w.iterations is not None else None},
                "num_parameters": _num_parameters(self.module), **_description(self.model)}


class SRTask:
    """Single-image SR training with an L1 loss on both exposures' LR/HR pairs (see the module
    docstring)."""

    kind = "sr"

    def __init__(self, model):
        _require(model, ("network", "scale", "forward_protocol", "upscale"), "SRTask")
        self.model = model

    @property
    def module(self) -> nn.Module:
        return self.model.network

    @property
    def scale(self) -> int:
        return int(self.model.scale)

    def loss(self, batch: PatchBatch) -> torch.Tensor:
        lr = torch.cat((batch.over, batch.under))
        hr = torch.cat((batch.gt_over, batch.gt_under))
        output = self.model.forward_protocol(lr)
        with full_precision(hr.device):
            return F.l1_loss(output.float(), hr)

    def predict(self, scene: Scene) -> torch.Tensor:
        return 0.5 * (self.model.upscale(scene.over) + self.model.upscale(scene.under))

    def config(self) -> dict:
        return {"kind": self.kind, "model": _model_name(self.model), "scale": self.scale,
                "loss": "L1 on both exposures' LR/HR pairs",
                "validation": "mean of the two upscaled exposures vs the ground truth",
                "num_parameters": _num_parameters(self.module), **_description(self.model)}
