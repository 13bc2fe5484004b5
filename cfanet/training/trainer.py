"""The training loop every trainable model of the project uses.

`Trainer(task, train_scenes, val_scenes, config, output_dir, distributed=ctx).fit(resume=...)`:

- batches from `PatchSampler` (aligned random crops, 8 flips/rotations, stateless in the step);
- Adam and a step decay of the learning rate per epoch (CF-Net: x0.5 every 200 epochs);
- after every `validate_every` epochs, at the end and (optionally) before the first step: every
  metric of `cfanet.metrics.registry` on `task.predict(scene)`, averaged over the validation scenes
  (`validation_keys`): the convention-dependent ones (PSNR, SSIM) against the ground truth under
  both PSNR/SSIM conventions, 'paper' (`val_psnr`, `val_ssim`) and 'sr' (`val_psnr_sr`,
  `val_ssim_sr`: Y channel, `scale` pixels cropped), the others once (`val_mef_ssim`, `val_qabf`,
  against the HR exposures);
- `last.pt` (model, optimiser, scheduler, RNG states, counters, history) after every epoch and
  at the end; `best.pt` (model and its scores) whenever the validation PSNR under the 'paper'
  convention (`val_psnr`, CF-Net's own validation PSNR) improves (the training loss of the epoch
  decides when there are no validation scenes); `history.json` and `curve.png` beside them. All
  written atomically;
- `fit(resume=True)` continues from `last.pt` exactly: on the CPU with `deterministic`, N steps
  in one run and N/2 + N/2 across a resume give bit-identical parameters;
- precision (`config.precision`, CUDA only): fp32, bf16 autocast, or fp16 autocast with a gradient
  scaler; channels-last tensors on CUDA (`channels_last`);
- several processes (torchrun; `distributed` = a `cfanet.training.distributed.DistributedContext`):
  the network runs inside DistributedDataParallel; `config.batch_size` is the global batch, rank r
  of W computing rows [r * B / W, (r + 1) * B / W) of the batch one process would draw at that
  step; DDP averages the gradients, so W processes x B / W rows follow one process x B up to float
  summation order. The logged loss is the mean over the ranks (the global batch's loss). Each rank
  validates every W-th validation scene and the per-scene scores are gathered, so the scores are
  those of one process. Rank 0 alone writes the output folder (the others wait at a barrier);
  checkpoints hold the bare network's state dict (no `module.` prefix), as single-process ones.
  A time budget is decided on rank 0, so all ranks stop at the same step.

The output folder belongs to one run: starting afresh where a `last.pt` exists is refused
(resume, or choose another folder), and resuming with settings that change the trajectory is
refused, naming them; the budget (epochs, max_steps, max_minutes) may change on resume, and so may
the number of processes (the global batch, hence the trajectory, does not depend on it; only the
float summation order and, for random layers such as dropout, which numbers each row draws do).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import torch
from torch import nn

from cfanet.checkpoint import CheckpointError
from cfanet.data.scene import Scene
from cfanet.training.config import TrainingConfig, TrainingError
from cfanet.training.curves import plot_training_curves
from cfanet.training.distributed import (DistributedContext, all_gather_objects, barrier, broadcast_flag,
                                         broadcast_object, mean_over_ranks, single_process, wrap_module)
from cfanet.training.patches import ROLES_BY_KIND, PatchBatch, PatchSampler
from cfanet.training.state import (FORMAT, VERSION, capture_rng, load_training_checkpoint, rank_seed, restore_rng,
                                   save_atomic, seed_everything, write_text_atomic)
from cfanet.training.tasks import TrainingTask

log = logging.getLogger(__name__)

LAST, BEST, HISTORY, CURVE = "last.pt", "best.pt", "history.json", "curve.png"
CURVE_INTERVAL_S = 30.0


# -- device precision -------------------------------------------------------------------------------

AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class PrecisionPlan:
    """How a training step runs on its device: autocast dtype (None = fp32) and memory format;
    fp16 autocast on CUDA also scales the loss (`grad_scaler`)."""

    device_type: str
    autocast_dtype: torch.dtype | None = None
    memory_format: torch.memory_format = torch.contiguous_format

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.autocast_dtype)

    @property
    def scales_gradients(self) -> bool:
        return self.device_type == "cuda" and self.autocast_dtype == torch.float16

    def grad_scaler(self) -> "torch.amp.GradScaler | None":
        """A new `torch.amp.GradScaler("cuda")` for fp16 on CUDA (fp16 gradients underflow without
        one), None otherwise."""
        if not self.scales_gradients:
            return None
        if hasattr(torch.amp, "GradScaler"):
            return torch.amp.GradScaler("cuda")
        return torch.cuda.amp.GradScaler()   # torch < 2.3

    def describe(self) -> str:
        names = {torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}
        dtype = names.get(self.autocast_dtype, str(self.autocast_dtype)) if self.autocast_dtype else "fp32"
        if self.scales_gradients:
            dtype += " + gradient scaling"
        layout = "channels-last" if self.memory_format == torch.channels_last else "contiguous"
        return f"{self.device_type}, {dtype}, {layout}"


def precision_plan(config: TrainingConfig, device: torch.device) -> PrecisionPlan:
    """`config.precision` (fp32, bf16 or fp16 autocast) and channels-last as `config` asks on CUDA;
    fp32 and contiguous elsewhere. A precision other than fp32 off CUDA raises TrainingError
    (refused rather than ignored, so that a run never records a precision it did not use)."""
    device = torch.device(device)
    if device.type != "cuda":
        if config.precision != "fp32":
            raise TrainingError(f"precision {config.precision!r} is for CUDA (autocast); on the {device.type} "
                                f"train in fp32 (precision 'fp32')")
        return PrecisionPlan(device.type)
    return PrecisionPlan("cuda", AUTOCAST_DTYPES[config.precision],
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


class TaskLoss(nn.Module):
    """`task.loss(batch)` as the forward pass of a module holding the task's network, so that
    DistributedDataParallel, which synchronises gradients of what runs through its forward, can
    wrap the loss computation (a task calls its network directly). Its parameters are the
    network's (no copy)."""

    def __init__(self, task: TrainingTask):
        super().__init__()
        self.network = task.module
        self.task = task

    def forward(self, batch: PatchBatch) -> torch.Tensor:
        return self.task.loss(batch)


def train_step(task: TrainingTask, optimizer: torch.optim.Optimizer, batch: PatchBatch, plan: PrecisionPlan,
               scaler: "torch.amp.GradScaler | None" = None, forward=None,
               context: DistributedContext | None = None) -> float:
    """One optimiser step on `batch` (already on the device); returns the loss as a float.

    `forward(batch)` computes the loss (default `task.loss`; the trainer passes its DDP-wrapped
    `TaskLoss`); `scaler`: the fp16 gradient scaler; on a distributed `context` the loss returned
    and checked is the mean over the ranks, the global batch's loss. Raises TrainingError when
    that loss is not finite (on every rank alike; the step is not applied)."""
    optimizer.zero_grad(set_to_none=True)
    with plan.autocast():
        loss = (forward or task.loss)(batch)
    reported = loss.detach().float()
    if context is not None:
        reported = mean_over_ranks(context, reported)
    value = float(reported)
    if not math.isfinite(value):
        raise TrainingError(f"the training loss is {value}; lower the learning rate or check the data")
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return value


# -- validation -------------------------------------------------------------------------------------

# PSNR/SSIM conventions of the validation scores: the first gives the bare keys (`val_psnr`) and
# selects `best.pt`; the others add `_<convention>` (`val_psnr_sr`).
VALIDATION_CONVENTIONS = ("paper", "sr")


def validation_metrics(conventions: Sequence[str] = VALIDATION_CONVENTIONS) -> list[tuple[str, object, str]]:
    """`(key, metric, convention)` of every validation score, in the registry's order: a metric of
    `cfanet.metrics.registry.METRICS` that is `convention_dependent` once per convention
    (`val_<metric>` for the first, `val_<metric>_<convention>` for the others), any other once
    (`val_<metric>`)."""
    from cfanet.metrics.registry import METRICS, OFFICIAL

    conventions = _as_tuple(conventions)
    entries = []
    for metric in METRICS:
        for convention in (conventions if metric.convention_dependent else (OFFICIAL,)):
            entries.append((validation_key(metric.name, convention, conventions), metric, convention))
    return entries


def validation_key(metric: str, convention: str | None = None,
                   conventions: Sequence[str] = VALIDATION_CONVENTIONS) -> str:
    """The key of a validation score: `val_<metric>` under the first of `conventions` or for a
    metric with one definition (convention None or 'official'), `val_<metric>_<convention>` under
    the others."""
    from cfanet.metrics.registry import OFFICIAL

    conventions = _as_tuple(conventions)
    if convention in (None, OFFICIAL) or convention == conventions[0]:
        return f"val_{metric}"
    if convention not in conventions:
        raise ValueError(f"convention {convention!r} is not one of the validation conventions {tuple(conventions)}")
    return f"val_{metric}_{convention}"


def _as_tuple(conventions: Sequence[str] | str) -> tuple[str, ...]:
    """A convention name alone stands for a one-convention sequence."""
    return (conventions,) if isinstance(conventions, str) else tuple(conventions)


def validation_keys(conventions: Sequence[str] = VALIDATION_CONVENTIONS) -> list[str]:
    """The keys of the validation scores (`validation_metrics`): `val_psnr`, `val_psnr_sr`,
    `val_ssim`, `val_ssim_sr`, `val_mef_ssim`, `val_qabf`, ... for the default conventions."""
    return [key for key, _, _ in validation_metrics(conventions)]


@torch.no_grad()
def score_scenes(task: TrainingTask, scenes: Sequence[Scene],
                 conventions: Sequence[str] = VALIDATION_CONVENTIONS) -> list[dict[str, float | None]]:
    """Per scene, every validation score of `task.predict(scene)` (8-bit as saved), keyed as
    `validation_keys`: metrics needing the ground truth against `scene.gt` (under each convention,
    the crop of the 'sr' convention being the scene's scale), those needing the sources against
    the HR exposures; None where the scene lacks what a metric needs. The module is evaluated in
    eval mode and left in its previous mode."""
    entries = validation_metrics(conventions)
    module = task.module
    was_training = module.training
    module.eval()
    results = []
    try:
        for scene in scenes:
            fused = task.predict(scene).detach().float().cpu().clamp(0, 1)
            results.append({key: metric.compute(fused, scene, convention, scene.scale) if metric.available(scene)
                            else None for key, metric, convention in entries})
    finally:
        module.train(was_training)
    return results


def mean_scores(per_scene: Sequence[dict[str, float | None]],
                conventions: Sequence[str] = VALIDATION_CONVENTIONS) -> dict[str, float | None]:
    """The mean of each score over the scenes that have it, in scene order (None: no scene has it)."""
    means = {}
    for key in validation_keys(conventions):
        values = [scores[key] for scores in per_scene if scores.get(key) is not None]
        means[key] = sum(values) / len(values) if values else None
    return means


def validate(task: TrainingTask, scenes: Sequence[Scene],
             conventions: Sequence[str] = VALIDATION_CONVENTIONS) -> dict[str, float | None]:
    """Mean over `scenes` of every validation score of `task.predict(scene)` (`score_scenes`), keyed
    `validation_keys`. The module is left in training mode if it was."""
    return mean_scores(score_scenes(task, scenes, conventions), conventions)


# -- the loop ---------------------------------------------------------------------------------------

@dataclass
class TrainingResult:
    """What a run did and where it wrote it (the same on every rank of a distributed run)."""

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
    world_size: int = 1

    @property
    def steps_per_second(self) -> float:
        return self.steps_this_run / self.seconds if self.seconds > 0 else float("nan")


class Trainer:
    """Trains `task.module` on patches of `train_scenes`, validating on `val_scenes`, writing to
    `output_dir` (see the module docstring). The module must already be on its device: on a
    distributed context (`distributed`, default: a single process), `distributed.device`, and every
    rank must construct its Trainer with the same arguments (the construction is collective)."""

    def __init__(self, task: TrainingTask, train_scenes: Sequence[Scene], val_scenes: Sequence[Scene],
                 config: TrainingConfig, output_dir: str | Path, *, progress: bool = True,
                 title: str | None = None, distributed: DistributedContext | None = None):
        if task.kind not in ROLES_BY_KIND:
            raise TrainingError(f"unknown task kind {task.kind!r}")
        self.task, self.config, self.output_dir = task, config, Path(output_dir)
        self.progress = progress
        self.module = task.module
        self.device = module_device(self.module)
        self.dist = distributed or single_process(self.device)
        if self.dist.is_distributed and self.device != self.dist.device:
            raise TrainingError(f"the model is on {self.device} but this process (rank {self.dist.rank}) computes on "
                                f"{self.dist.device}: create the model on the context's device")
        self.rows = self.dist.rows(config.batch_size)
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
        self.scaler = self.plan.grad_scaler()
        self.title = title or f"{task.config().get('model', 'model')} x{task.scale}"
        self.step = 0
        self.losses: list[float] = []
        self.history: list[dict] = []
        self.best: dict | None = None
        self._curve_written_at: float | None = None
        # The memory format is set before DDP lays out its gradient buckets; DDP's construction
        # (a collective: rank 0's parameters and buffers reach every rank) comes last, after every
        # check that could refuse the run on all ranks alike.
        self.module.to(memory_format=self.plan.memory_format)
        self.forward = wrap_module(TaskLoss(task), self.dist) if self.dist.is_distributed else task.loss

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
                "config": self.config.to_dict(), "task": self.task.config(), "world_size": self.dist.world_size,
                "train_scenes": list(self.sampler.names), "val_scenes": [s.name for s in self.val_scenes]}

    def state_dict(self, rng_by_rank: list[dict] | None = None) -> dict:
        """Everything `load_state_dict` needs to continue this run exactly. `rng` holds this
        process's RNG states; a distributed run passes every rank's (`rng_by_rank`, in rank order)."""
        state = {**self._common(), "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "rng": capture_rng(self.device), "losses": list(self.losses), "history": list(self.history),
                 "best": self.best}
        if rng_by_rank is not None:
            state["rng_by_rank"] = list(rng_by_rank)
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state: dict, source: str = "<checkpoint>") -> None:
        """Restore a `state_dict` (checked against this run's task and settings).

        A checkpoint of W processes resumes on any number of processes (the global batch is
        `config.batch_size` either way). The RNG states: with the same number of processes each
        rank gets its own back (the run continues bit for bit where the device allows); otherwise
        rank 0 gets rank 0's and the other ranks fresh streams of (seed, rank, step). The patch
        sampler is stateless, so only random layers (dropout) see the difference."""
        saved = TrainingConfig.from_dict(state["config"])
        if "precision" not in state["config"] and self.device.type != "cuda":
            # An `amp` checkpoint (before `precision`): amp acted only on CUDA, so off CUDA it was fp32.
            saved = dataclasses.replace(saved, precision="fp32")
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
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        by_rank = state.get("rng_by_rank") or []
        if len(by_rank) == self.dist.world_size:
            restore_rng(by_rank[self.dist.rank], self.device)
        else:
            restore_rng(state["rng"], self.device)
            if self.dist.rank != 0:
                seed_everything(rank_seed(self.config.seed, self.dist.rank, self.step))
        saved_world = int(state.get("world_size", 1))
        if saved_world != self.dist.world_size and self.dist.is_main:
            log.info("%s was written by %d process(es), resuming on %d: same global batch of %d, other float "
                     "summation order", source, saved_world, self.dist.world_size, self.config.batch_size)
        self.losses = [float(v) for v in state["losses"]]
        self.history = [dict(h) for h in state["history"]]
        self.best = dict(state["best"]) if state["best"] else None

    def _save_best(self, record: dict) -> None:
        save_atomic({**self._common(), "scores": record}, self.best_path)

    def _checkpoint(self, final: bool = False, save_last: bool = True) -> None:
        """`last.pt` (when `save_last`) and the reports, written by rank 0; every rank returns once
        they are written. Collective: every rank calls it at the same step."""
        rng_by_rank = None
        if save_last and self.dist.is_distributed:
            rng_by_rank = all_gather_objects(self.dist, capture_rng(self.device))
        if self.dist.is_main:
            if save_last:
                save_atomic(self.state_dict(rng_by_rank), self.last_path)
            self._write_reports(final)
        barrier(self.dist)

    def _write_reports(self, final: bool = False) -> None:
        """`history.json` always; the curve at the end and at most every CURVE_INTERVAL_S seconds
        before (drawing it costs a few tenths of a second)."""
        summary = {"title": self.title, "config": self.config.to_dict(), "task": self.task.config(),
                   "steps_per_epoch": self.steps_per_epoch, "step": self.step, "epoch": self.epoch,
                   "best": self.best, "history": self.history, "precision": self.plan.describe(),
                   "world_size": self.dist.world_size, "best_selected_by": "val_psnr ('paper' convention)",
                   "train_scenes": len(self.sampler), "val_scenes": [s.name for s in self.val_scenes]}
        write_text_atomic(self.output_dir / HISTORY, json.dumps(summary, indent=2, allow_nan=True))
        now = time.monotonic()
        if final or self._curve_written_at is None or now - self._curve_written_at >= CURVE_INTERVAL_S:
            plot_training_curves(self.losses, self.history, self.output_dir / CURVE, title=self.title)
            self._curve_written_at = now

    # -- validation and records -------------------------------------------------------------------

    def _validation_scores(self) -> dict[str, float | None]:
        """`validate` on the validation scenes; distributed, rank r scores scenes r, r + W, ... and
        the per-scene scores are gathered, then averaged in scene order as one process would."""
        if not self.val_scenes:
            return dict.fromkeys(validation_keys())
        mine = list(range(self.dist.rank, len(self.val_scenes), self.dist.world_size))
        scored = zip(mine, score_scenes(self.task, [self.val_scenes[i] for i in mine]))
        gathered = all_gather_objects(self.dist, list(scored))
        return mean_scores([scores for _, scores in sorted(chain.from_iterable(gathered), key=lambda x: x[0])])

    def _record(self, seconds: float, partial: bool = False) -> dict:
        """Validate, append the record to the history, and save `best.pt` if it is the best so far
        (by `val_psnr`, the 'paper' convention; by the training loss without validation scenes).
        Collective; every rank ends with rank 0's record."""
        scores = self._validation_scores()
        since = self.history[-1]["step"] if self.history else 0
        window = self.losses[since:self.step]
        record = {"epoch": self.epoch if not partial else round(self.step / self.steps_per_epoch, 4),
                  "step": self.step, "lr": self.lr,
                  "train_loss": (sum(window) / len(window)) if window else None,
                  **scores, "world_size": self.dist.world_size, "seconds": round(seconds, 3)}
        record = broadcast_object(self.dist, record)   # rank 0's clock on every rank
        self.history.append(record)
        score, key = ((record["val_psnr"], "val_psnr") if record["val_psnr"] is not None else
                      (-record["train_loss"] if record["train_loss"] is not None else None, "train_loss"))
        if score is not None:
            best_score = None
            if self.best is not None:
                best_score = self.best["val_psnr"] if key == "val_psnr" else -self.best["train_loss"]
            if best_score is None or score > best_score:
                self.best = dict(record, selected_by=key)
                if self.dist.is_main:
                    self._save_best(record)
        return record

    # -- the loop ---------------------------------------------------------------------------------

    def _start(self, resume: bool) -> bool:
        """Resume from `last.pt` or start afresh (rank 0 reads the folder and sends what it found to
        the others, so only rank 0 needs to see it). Returns whether `last.pt` existed."""
        ctx = self.dist
        if ctx.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        found = broadcast_object(ctx, self.last_path.is_file() if ctx.is_main else None)
        if resume and found:
            payload = None
            if ctx.is_main:
                try:
                    payload = load_training_checkpoint(self.last_path)
                except CheckpointError as exc:
                    payload = exc
            payload = broadcast_object(ctx, payload)
            if isinstance(payload, Exception):
                raise payload
            self.load_state_dict(payload, str(self.last_path))
            if ctx.is_main:
                log.info("resumed %s at step %d (epoch %d)", self.last_path, self.step, self.epoch)
        elif found:
            raise TrainingError(f"{self.last_path} exists: resume that run, or write to another folder")
        else:
            if resume and ctx.is_main:
                log.info("no %s to resume from; starting afresh", self.last_path)
            seed_everything(rank_seed(self.config.seed, ctx.rank))
        return found

    def fit(self, resume: bool = False) -> TrainingResult:
        """Train until the budget is spent; returns where everything was written. Distributed:
        every rank calls it; all stop at the same step."""
        ctx = self.dist
        found = self._start(resume)
        start, start_step = time.monotonic(), self.step
        deadline = start + 60 * self.config.max_minutes if self.config.max_minutes else None
        total = self.total_steps()
        self.module.train()
        stopped_by = "budget"
        with reproducibility(self.device, self.config.deterministic):
            if self.step == 0 and self.config.validate_at_start and not self.history:
                self._record(0.0)
            bar = _progress(total, self.step, self.progress and ctx.is_main, self.title)
            try:
                while total is None or self.step < total:
                    if deadline is not None and broadcast_flag(ctx, time.monotonic() >= deadline):
                        stopped_by = "time"
                        break
                    batch = self.sampler.batch(self.step, self.rows).to(self.device, self.plan.memory_format)
                    loss = train_step(self.task, self.optimizer, batch, self.plan, self.scaler, self.forward,
                                      ctx if ctx.is_distributed else None)
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
                        self._checkpoint()
                if self.step != start_step and (not self.history or self.history[-1]["step"] != self.step):
                    self._record(time.monotonic() - start, partial=True)
                self._checkpoint(final=True, save_last=self.step != start_step or not found)
            finally:
                bar.close()
        seconds = time.monotonic() - start
        best_exists = broadcast_object(ctx, self.best_path.is_file() if ctx.is_main else None)
        return TrainingResult(output_dir=self.output_dir, last_checkpoint=self.last_path,
                              best_checkpoint=self.best_path if best_exists else None,
                              curve=self.output_dir / CURVE, history_file=self.output_dir / HISTORY,
                              steps=self.step, epochs_completed=self.epoch, seconds=seconds,
                              steps_this_run=self.step - start_step, stopped_by=stopped_by, best=self.best,
                              history=list(self.history), world_size=ctx.world_size)


def _progress(total: int | None, initial: int, enabled: bool, title: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc=f"train {title}", unit="step",
                dynamic_ncols=True, leave=True)
