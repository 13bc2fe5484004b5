"""The training loop every trainable model of the project uses.

`Trainer(task, train_scenes, val_scenes, config, output_dir).fit(resume=...)`:

- batches from `PatchSampler` (aligned random crops, 8 flips/rotations, stateless in the step);
- Adam and a step decay of the learning rate per epoch (CF-Net: x0.5 every 200 epochs);
- after every `validate_every` epochs, at the end and (optionally) before the first step: every
  metric of `cfanet.metrics.registry` on `task.predict(scene)`, averaged over the validation scenes
  (`val_psnr`, `val_ssim` against the ground truth under the 'paper' convention; `val_mef_ssim`,
  `val_qabf` against the HR exposures);
- `last.pt` (model, optimiser, scheduler, RNG states, counters, history) after every epoch and
  at the end; `best.pt` (model and its scores) whenever the validation PSNR improves (the
  training loss of the epoch decides when there are no validation scenes); `history.json` and
  `curve.png` beside them. All written atomically;
- `fit(resume=True)` continues from `last.pt` exactly: on the CPU with `deterministic`, N steps
  in one run and N/2 + N/2 across a resume give bit-identical parameters;
- on CUDA: bf16 autocast for the forward pass (`amp`) and channels-last tensors (`channels_last`).

The output folder belongs to one run: starting afresh where a `last.pt` exists is refused
(resume, or choose another folder), and resuming with settings that change the trajectory is
refused, naming them; the budget (epochs, max_steps, max_minutes) may change on resume.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cfanet.data.scene import Scene
from cfanet.training.config import TrainingConfig, TrainingError
from cfanet.training.curves import plot_training_curves
from cfanet.training.patches import ROLES_BY_KIND, PatchBatch, PatchSampler
from cfanet.training.state import (FORMAT, VERSION, capture_rng, load_training_checkpoint, restore_rng,
                                   save_atomic, seed_everything, write_text_atomic)
from cfanet.training.tasks import TrainingTask

log = logging.getLogger(__name__)

LAST, BEST, HISTORY, CURVE = "last.pt", "best.pt", "history.json", "curve.png"
CURVE_INTERVAL_S = 30.0


# -- device precision -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PrecisionPlan:
    """How a training step runs on its device: autocast dtype (None = fp32) and memory format."""

    device_type: str
    autocast_dtype: torch.dtype | None = None
    memory_format: torch.memory_format = torch.contiguous_format

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.autocast_dtype)

    def describe(self) -> str:
        dtype = "bf16 autocast" if self.autocast_dtype == torch.bfloat16 else (
            str(self.autocast_dtype) if self.autocast_dtype else "fp32")
        layout = "channels-last" if self.memory_format == torch.channels_last else "contiguous"
        return f"{self.device_type}, {dtype}, {layout}"


def precision_plan(config: TrainingConfig, device: torch.device) -> PrecisionPlan:
    """bf16 autocast and channels-last on CUDA as `config` asks; fp32 and contiguous elsewhere."""
    if device.type != "cuda":
        return PrecisionPlan(device.type)
    return PrecisionPlan("cuda", torch.bfloat16 if config.amp else None,
                         torch.channels_last if config.channels_last else torch.contiguous_format)


@contextlib.contextmanager
def reproducibility(device: torch.device, deterministic: bool):
    """On the CPU with `deterministic`: torch's deterministic algorithms. On CUDA: cudnn's
    benchmark mode (fastest kernels; runs are seeded but not bit-reproducible). Restores the
    previous global settings on exit."""
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.benchmark)
    try:
        if device.type == "cpu" and deterministic:
            torch.use_deterministic_algorithms(True)
        elif device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark = previous[2]


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter (CPU for a module without any)."""
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def train_step(task: TrainingTask, optimizer: torch.optim.Optimizer, batch: PatchBatch, plan: PrecisionPlan) -> float:
    """One optimiser step on `batch` (already on the device); returns the loss as a float.
    Raises TrainingError when the loss is not finite (the step is not applied)."""
    optimizer.zero_grad(set_to_none=True)
    with plan.autocast():
        loss = task.loss(batch)
    value = float(loss.detach())
    if not math.isfinite(value):
        raise TrainingError(f"the training loss is {value}; lower the learning rate or check the data")
    loss.backward()
    optimizer.step()
    return value


# -- validation -------------------------------------------------------------------------------------

def validation_keys() -> list[str]:
    """The keys of the validation scores: `val_<metric>` for every metric of the registry
    (`val_psnr`, `val_ssim`, `val_mef_ssim`, `val_qabf`, ...), in the registry's order."""
    from cfanet.metrics.registry import METRICS

    return [f"val_{metric.name}" for metric in METRICS]


@torch.no_grad()
def validate(task: TrainingTask, scenes: Sequence[Scene], convention: str = "paper") -> dict[str, float | None]:
    """Mean over `scenes` of every registered metric of `task.predict(scene)` (8-bit as saved): those
    needing the ground truth against `scene.gt` (under `convention`), those needing the sources
    against the HR exposures; keyed `val_<metric>` (`validation_keys`). A score is None when no scene
    has what it needs. The module is left in training mode."""
    from cfanet.metrics.registry import METRICS

    module = task.module
    was_training = module.training
    module.eval()
    scores: dict[str, list[float]] = {f"val_{metric.name}": [] for metric in METRICS}
    try:
        for scene in scenes:
            fused = task.predict(scene).detach().float().cpu().clamp(0, 1)
            for metric in METRICS:
                if metric.available(scene):
                    scores[f"val_{metric.name}"].append(metric.compute(fused, scene, convention, scene.scale))
    finally:
        module.train(was_training)
    return {k: (sum(v) / len(v) if v else None) for k, v in scores.items()}


# -- the loop ---------------------------------------------------------------------------------------

@dataclass
class TrainingResult:
    """What a run did and where it wrote it."""

    output_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    curve: Path
    history_file: Path
    steps: int
    epochs_completed: int
    seconds: float
    steps_this_run: int
    stopped_by: str
    best: dict | None
    history: list[dict] = field(default_factory=list)

    @property
    def steps_per_second(self) -> float:
        return self.steps_this_run / self.seconds if self.seconds > 0 else float("nan")


class Trainer:
    """Trains `task.module` on patches of `train_scenes`, validating on `val_scenes`, writing to
    `output_dir` (see the module docstring). The module must already be on its device."""

    def __init__(self, task: TrainingTask, train_scenes: Sequence[Scene], val_scenes: Sequence[Scene],
                 config: TrainingConfig, output_dir: str | Path, *, progress: bool = True,
                 title: str | None = None):
        if task.kind not in ROLES_BY_KIND:
            raise TrainingError(f"unknown task kind {task.kind!r}")
        self.task, self.config, self.output_dir = task, config, Path(output_dir)
        self.progress = progress
        self.module = task.module
        self.device = module_device(self.module)
        self.sampler = PatchSampler(train_scenes, config.patch_size, config.batch_size, seed=config.seed,
                                    augment=config.augment, roles=ROLES_BY_KIND[task.kind])
        if self.sampler.scale != task.scale:
            raise TrainingError(f"the training scenes are at x{self.sampler.scale}, the model is x{task.scale}")
        self.val_scenes = list(val_scenes)
        bad = [s.name for s in self.val_scenes if s.scale != task.scale]
        if bad:
            raise TrainingError(f"validation scenes not at x{task.scale}: {', '.join(bad[:5])}")
        self.steps_per_epoch = config.steps_per_epoch or math.ceil(len(self.sampler) / config.batch_size)
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=config.lr, betas=tuple(config.betas),
                                          eps=config.eps, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=config.decay_every,
                                                         gamma=config.decay_gamma)
        self.plan = precision_plan(config, self.device)
        self.title = title or f"{task.config().get('model', 'model')} x{task.scale}"
        self.step = 0
        self.losses: list[float] = []
        self.history: list[dict] = []
        self.best: dict | None = None
        self._curve_written_at: float | None = None

    # -- paths and counters -----------------------------------------------------------------------

    @property
    def last_path(self) -> Path:
        return self.output_dir / LAST

    @property
    def best_path(self) -> Path:
        return self.output_dir / BEST

    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return self.step // self.steps_per_epoch

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def total_steps(self) -> int | None:
        """The step at which the step/epoch budget ends (None: only a time budget)."""
        limits = [self.config.max_steps] if self.config.max_steps is not None else []
        if self.config.epochs is not None:
            limits.append(self.config.epochs * self.steps_per_epoch)
        return min(limits) if limits else None

    # -- checkpoints ------------------------------------------------------------------------------

    def _common(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "model": self.module.state_dict(),
                "step": self.step, "epoch": self.epoch, "steps_per_epoch": self.steps_per_epoch,
                "config": self.config.to_dict(), "task": self.task.config(),
                "train_scenes": list(self.sampler.names), "val_scenes": [s.name for s in self.val_scenes]}

    def state_dict(self) -> dict:
        """Everything `load_state_dict` needs to continue this run exactly."""
        return {**self._common(), "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "rng": capture_rng(), "losses": list(self.losses), "history": list(self.history), "best": self.best}

    def load_state_dict(self, state: dict, source: str = "<checkpoint>") -> None:
        """Restore a `state_dict` (checked against this run's task and settings)."""
        saved = TrainingConfig.from_dict(state["config"])
        differences = saved.trajectory_differences(self.config)
        if differences:
            raise TrainingError(f"{source} was written with other settings; resuming would not continue that run "
                                f"(checkpoint vs now): " + "; ".join(differences))
        mine, theirs = self.task.config(), state["task"]
        changed = [f"{k}: {theirs.get(k)!r} vs {mine.get(k)!r}" for k in sorted(set(mine) | set(theirs))
                   if theirs.get(k) != mine.get(k)]
        if changed:
            raise TrainingError(f"{source} trained another model or task (checkpoint vs now): " + "; ".join(changed))
        if state["train_scenes"] != list(self.sampler.names):
            raise TrainingError(f"{source} was trained on other scenes ({len(state['train_scenes'])} scenes, "
                                f"now {len(self.sampler)}); resume with the same training data")
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"])
        self.step = int(state["step"])
        self.losses = [float(v) for v in state["losses"]]
        self.history = [dict(h) for h in state["history"]]
        self.best = dict(state["best"]) if state["best"] else None

    def _save_last(self) -> None:
        save_atomic(self.state_dict(), self.last_path)

    def _save_best(self, record: dict) -> None:
        save_atomic({**self._common(), "scores": record}, self.best_path)

    def _write_reports(self, final: bool = False) -> None:
        """`history.json` always; the curve at the end and at most every CURVE_INTERVAL_S seconds
        before (drawing it costs a few tenths of a second)."""
        summary = {"title": self.title, "config": self.config.to_dict(), "task": self.task.config(),
                   "steps_per_epoch": self.steps_per_epoch, "step": self.step, "epoch": self.epoch,
                   "best": self.best, "history": self.history, "precision": self.plan.describe(),
                   "train_scenes": len(self.sampler), "val_scenes": [s.name for s in self.val_scenes]}
        write_text_atomic(self.output_dir / HISTORY, json.dumps(summary, indent=2, allow_nan=True))
        now = time.monotonic()
        if final or self._curve_written_at is None or now - self._curve_written_at >= CURVE_INTERVAL_S:
            plot_training_curves(self.losses, self.history, self.output_dir / CURVE, title=self.title)
            self._curve_written_at = now

    # -- validation and records -------------------------------------------------------------------

    def _record(self, seconds: float, partial: bool = False) -> dict:
        since = self.history[-1]["step"] if self.history else 0
        window = self.losses[since:self.step]
        record = {"epoch": self.epoch if not partial else round(self.step / self.steps_per_epoch, 4),
                  "step": self.step, "lr": self.lr,
                  "train_loss": (sum(window) / len(window)) if window else None,
                  **(validate(self.task, self.val_scenes) if self.val_scenes else
                     dict.fromkeys(validation_keys())),
                  "seconds": round(seconds, 3)}
        self.history.append(record)
        score, key = ((record["val_psnr"], "val_psnr") if record["val_psnr"] is not None else
                      (-record["train_loss"] if record["train_loss"] is not None else None, "train_loss"))
        if score is not None:
            best_score = None
            if self.best is not None:
                best_score = self.best["val_psnr"] if key == "val_psnr" else -self.best["train_loss"]
            if best_score is None or score > best_score:
                self.best = dict(record, selected_by=key)
                self._save_best(record)
        return record

    # -- the loop ---------------------------------------------------------------------------------

    def fit(self, resume: bool = False) -> TrainingResult:
        """Train until the budget is spent; returns where everything was written."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if resume and self.last_path.is_file():
            self.load_state_dict(load_training_checkpoint(self.last_path), str(self.last_path))
            log.info("resumed %s at step %d (epoch %d)", self.last_path, self.step, self.epoch)
        elif self.last_path.is_file():
            raise TrainingError(f"{self.last_path} exists: resume that run, or write to another folder")
        else:
            if resume:
                log.info("no %s to resume from; starting afresh", self.last_path)
            seed_everything(self.config.seed)

        start, start_step = time.monotonic(), self.step
        deadline = start + 60 * self.config.max_minutes if self.config.max_minutes else None
        total = self.total_steps()
        self.module.train()
        self.module.to(memory_format=self.plan.memory_format)
        stopped_by = "budget"
        with reproducibility(self.device, self.config.deterministic):
            if self.step == 0 and self.config.validate_at_start and not self.history:
                self._record(0.0)
            bar = _progress(total, self.step, self.progress, self.title)
            try:
                while total is None or self.step < total:
                    if deadline is not None and time.monotonic() >= deadline:
                        stopped_by = "time"
                        break
                    batch = self.sampler.batch(self.step).to(self.device, self.plan.memory_format)
                    loss = train_step(self.task, self.optimizer, batch, self.plan)
                    self.step += 1
                    self.losses.append(loss)
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{self.lr:.2e}", refresh=False)
                    if self.step % self.steps_per_epoch == 0:
                        at_end = total is not None and self.step >= total
                        if self.epoch % self.config.validate_every == 0 or at_end:
                            record = self._record(time.monotonic() - start)
                            if record["val_psnr"] is not None:
                                bar.set_postfix(loss=f"{loss:.4f}", val_psnr=f"{record['val_psnr']:.2f}")
                        self.scheduler.step()   # the lr of the next epoch
                        self._save_last()
                        self._write_reports()
                if self.step != start_step and (not self.history or self.history[-1]["step"] != self.step):
                    self._record(time.monotonic() - start, partial=True)
                if self.step != start_step or not self.last_path.is_file():
                    self._save_last()
                self._write_reports(final=True)
            finally:
                bar.close()
        seconds = time.monotonic() - start
        return TrainingResult(output_dir=self.output_dir, last_checkpoint=self.last_path,
                              best_checkpoint=self.best_path if self.best_path.is_file() else None,
                              curve=self.output_dir / CURVE, history_file=self.output_dir / HISTORY,
                              steps=self.step, epochs_completed=self.epoch, seconds=seconds,
                              steps_this_run=self.step - start_step, stopped_by=stopped_by, best=self.best,
                              history=list(self.history))


def _progress(total: int | None, initial: int, enabled: bool, title: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc=f"train {title}", unit="step",
                dynamic_ncols=True, leave=True)
