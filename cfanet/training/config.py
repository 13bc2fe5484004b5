"""Every setting of a training run, in one frozen, validated dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


class TrainingError(ValueError):
    """A training run cannot start or continue (bad settings, incompatible resume, NaN loss);
    the message says what to change."""


# Settings that only bound how long a run goes on (or how it reports) and may change on resume;
# every other field shapes the trajectory and must match the checkpoint being resumed.
BUDGET_FIELDS = ("epochs", "max_steps", "max_minutes")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of one run. Defaults follow CF-Net's official training script where it is sane.

    Data (sizes in LR pixels):
      - `batch_size` = 4 and `patch_size` = 64: CF-Net's LR patch and batch (the HR patches are
        `scale * patch_size`). Every image of the patch batch is cropped at the same place.
      - `augment`: each patch gets one of the 8 flips/rotations (the dihedral group), the same
        for all its images. CF-Net augments offline by 4 rotations before downscaling.
      - `steps_per_epoch`: None = one pass over the training scenes, ceil(scenes / batch), as
        CF-Net's data loader (one random crop per scene and epoch). Small sets (the demo) set it
        higher so that an "epoch" is a sensible unit for validation and the schedule.

    Optimisation:
      - Adam with `lr`, `betas`, `eps`, `weight_decay`.
      - `lr` = 1e-4: the usual rate of the SR networks CF-Net builds on (SRFBN, RCAN, D-DBPN).
        CF-Net's script sets 1e-6 with 1000 epochs on SICE; pass that explicitly to follow it.
        Short demo runs use a higher rate (see `demo_config`).
      - step decay: the rate is multiplied by `decay_gamma` = 0.5 every `decay_every` = 200
        epochs, as CF-Net.

    Budget (the run stops at whichever comes first; None = no limit, at least one must be set):
      `epochs` (1000, CF-Net), `max_steps` (optimiser steps in total, counted across resumes),
      `max_minutes` (wall-clock minutes of this invocation; not reproducible by nature).

    Validation: every `validate_every` epochs, at the end of the run, and before the first step
    when `validate_at_start` (the untrained starting point on the curve).

    Precision (`precision`): "fp32" (the default on every device: the paper's networks were
    trained in fp32), "bf16" (bf16 autocast of the forward pass) or "fp16" (fp16 autocast with a
    `torch.amp.GradScaler`, whose state `last.pt` keeps). Losses are computed in fp32 either way.
    Autocast is for CUDA only: on any other device a precision other than fp32 is refused
    (TrainingError from `precision_plan`), not silently ignored. Checkpoints written before this
    field existed stored `amp` (bf16 autocast on CUDA): `from_dict` reads `amp = True` as "bf16"
    and `False` as "fp32".

    Device settings: `channels_last` memory format for the network and the batches (CUDA only).
    On the CPU the run is fp32 and, with `deterministic`, bit-reproducible (deterministic
    algorithms, seeded RNGs, same torch version and thread count); on CUDA it is seeded but not
    bit-reproducible (cudnn picks its fastest kernels).

    Processes: `batch_size` is the global batch of a step. A run of W processes (torchrun, see
    `cfanet.training.distributed`) gives each process B / W rows of the batch a single process
    would draw at that step (B must be divisible by W), so W processes follow the single-process
    trajectory up to float summation order, and a run may be resumed on another number of
    processes.
    """

    batch_size: int = 4
    patch_size: int = 64
    augment: bool = True
    steps_per_epoch: int | None = None
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    decay_every: int = 200
    decay_gamma: float = 0.5
    epochs: int | None = 1000
    max_steps: int | None = None
    max_minutes: float | None = None
    validate_every: int = 1
    validate_at_start: bool = True
    seed: int = 0
    precision: str = "fp32"
    channels_last: bool = True
    deterministic: bool = True

    def __post_init__(self) -> None:
        positive = {"batch_size": self.batch_size, "patch_size": self.patch_size, "lr": self.lr,
                    "decay_every": self.decay_every, "validate_every": self.validate_every}
        for name in ("steps_per_epoch", "epochs", "max_steps", "max_minutes"):
            if getattr(self, name) is not None:
                positive[name] = getattr(self, name)
        for name, value in positive.items():
            if isinstance(value, bool) or not value > 0:
                raise TrainingError(f"training setting {name} must be positive, got {value!r}")
        if self.epochs is None and self.max_steps is None and self.max_minutes is None:
            raise TrainingError("training needs a budget: set epochs, max_steps or max_minutes")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise TrainingError(f"training setting seed must be a non-negative integer, got {self.seed!r}")
        if not 0 < self.decay_gamma <= 1:
            raise TrainingError(f"training setting decay_gamma must be in (0, 1], got {self.decay_gamma!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise TrainingError(f"training setting betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.precision not in PRECISIONS:
            raise TrainingError(f"training setting precision must be one of {', '.join(PRECISIONS)}, "
                                f"got {self.precision!r}")
        if self.eps <= 0 or self.weight_decay < 0:
            raise TrainingError("training settings eps must be positive and weight_decay non-negative")

    def to_dict(self) -> dict:
        """Plain values (tuples as lists), as stored in checkpoints and `history.json`."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> "TrainingConfig":
        """The inverse of `to_dict` (unknown keys raise TrainingError). The `amp` flag of checkpoints
        written before `precision` existed is read as precision "bf16" (True) or "fp32" (False)."""
        values = dict(values)
        if "amp" in values and "precision" not in values:
            values["precision"] = "bf16" if values.pop("amp") else "fp32"
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TrainingError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**{k: tuple(v) if k == "betas" else v for k, v in values.items()})

    def trajectory_differences(self, other: "TrainingConfig") -> list[str]:
        """Settings (other than the budget) in which `other` differs, as 'name: self vs other'."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k}: {mine[k]!r} vs {theirs[k]!r}" for k in mine
                if k not in BUDGET_FIELDS and mine[k] != theirs[k]]


def demo_config(**overrides) -> TrainingConfig:
    """Settings for a short demo run on CPU: LR patches of 32, batch 4, lr 5e-4 (a minutes-long run
    cannot afford 1e-4), 25 steps per epoch (validation and the schedule in sensible units), no
    decay within a few hundred steps; 300 steps unless overridden."""
    values = dict(patch_size=32, batch_size=4, lr=5e-4, steps_per_epoch=25, decay_every=200,
                  epochs=None, max_steps=300)
    values.update(overrides)
    return TrainingConfig(**values)
