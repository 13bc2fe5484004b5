"""Scoring as tasks: a batch of final images scored on a worker's device, plain floats back.

The runner scores a run's final images the way it computes stages: it plans *score batches* (the
final images whose metric values are not in the metric cache yet, by scale and HR size, in scene
order), an executor scores each batch where it computes stages (the local executor in the driver
process, the Ray executor in a remote task on a worker's device) and the driver alone writes the
values (the metric cache, `pipelines.scoring`, and the results database).

What travels is small and plain: a batch's inputs (`ScoreInputs`) are 8-bit tensors, the final
images and, once per scene, its references; a result is one `{"metric|convention": float}` per
image, in the registry's order (the order `pipelines.scoring.compute_scores` gives), and the
seconds spent per metric.

Every metric is called through its registry descriptor (`cfanet.metrics.registry`), in one of two
ways (`score_batch`):

- **batched**: a metric whose module has a batched function (`BATCHED_FUNCTIONS`, looked up with
  `hasattr`, so a metric module gains or loses one without a change here) is called once per
  batch and convention on the worker's device, on 8-bit tensors: `fn(images, references,
  convention, scale)` for a metric that needs the ground truth, `fn(sources, images)` (sources
  (N, K, 3, H, W)) for one that needs the source exposures; each returns (N,) values;
- **per image**: any other metric, through `Metric.compute` on each image (float32 (1, 3, H, W) in
  [0, 1] on the worker's device: the form the driver scored until now).

Batched is the default on CUDA, per image on the CPU. The batched functions cut a batch into strips
whose height depends on how many images it holds, so their float64 sums can differ from the
single-image functions' in the last bit (measured on random 192 and 300 px images: PSNR on Y, SSIM
and MEF-SSIM of some images, by an ulp or two). A value is cached under a key that does not say how
it was computed, so on the CPU, where results must be bit for bit those of the driver-side scoring
(and equal across executors), every metric is computed per image. CUDA values were never
bit-identical to the CPU's (and the stage keys, so the final images, already differ by device);
there the batched functions agree with the per-image ones to ~1e-15 (the metric modules' tests).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from cfanet.metrics.registry import Metric, References, metric_key, select

# Metric name -> (module, batched function), used where the module defines that function.
BATCHED_FUNCTIONS: dict[str, tuple[str, str]] = {
    "psnr": ("cfanet.metrics.psnr_ssim", "psnr_batch"),
    "ssim": ("cfanet.metrics.psnr_ssim", "ssim_batch"),
    "mef_ssim": ("cfanet.metrics.mef_ssim", "mef_ms_ssim_batch"),
    "qabf": ("cfanet.metrics.qabf", "qabf_batch"),
}

DEFAULT_SCORE_BATCH = 8  # images per score batch when `runtime.batch_size` is smaller


@dataclass(frozen=True)
class ScoreSpec:
    """What every image of a run is scored with: the metric names (registry order) and the
    profile's PSNR/SSIM conventions (the main one first)."""

    metrics: tuple[str, ...]
    conventions: tuple[str, ...]

    def resolved(self) -> tuple[Metric, ...]:
        return select(self.metrics)


@dataclass(frozen=True)
class ScoreItem:
    """One final image to score: its metric cache key, the stage key of the image, where it is
    from (scale, scene, HR size) and a pipeline that ends in it (for messages)."""

    key: str
    final: str
    scale: int
    scene: str
    size: tuple[int, int]
    pipeline: str


@dataclass(frozen=True)
class ScoreBatch:
    """Final images of one scale and size, scored together."""

    scale: int
    size: tuple[int, int]
    items: tuple[ScoreItem, ...]

    def scenes(self) -> list[str]:
        """The batch's scene names, each once, in order."""
        return list(dict.fromkeys(item.scene for item in self.items))

    def describe(self) -> str:
        scenes = ", ".join(repr(name) for name in self.scenes())
        pipelines = ", ".join(dict.fromkeys(item.pipeline for item in self.items))
        return f"x{self.scale} scene{'s' if len(self.scenes()) > 1 else ''} {scenes} ({pipelines})"


@dataclass
class ScoreInputs:
    """A batch's pixels as a worker receives them: `images` (N, 3, H, W) uint8, the final images
    in item order; `references[j]` the j-th scene's gt / gt_over / gt_under as (1, 3, H, W) uint8
    tensors (None where the scene has none); `scene_of[i]` the reference index of image i."""

    images: torch.Tensor
    references: list[References]
    scene_of: tuple[int, ...]


@dataclass
class ScoreResult:
    """A scored batch: `values[i]` of item i ({"metric|convention": float}, registry order), the
    seconds the batch took on its worker and the part of them each metric took."""

    batch: ScoreBatch
    values: list[dict[str, float]]
    seconds: float = 0.0
    metric_seconds: dict[str, float] = field(default_factory=dict)


class ScoreBatchError(RuntimeError):
    """A score batch failed; `batch` says which, `cause` is the original error (or its text)."""

    def __init__(self, batch: ScoreBatch, cause: BaseException | str):
        self.batch, self.cause = batch, cause
        text = cause if isinstance(cause, str) else (str(cause).strip() or type(cause).__name__)
        super().__init__(" ".join(line.strip() for line in text.splitlines() if line.strip()))


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """A float [0, 1] image (1, 3, H, W) as the 8-bit tensor the metrics score (clip, round half up:
    `cfanet.images.quantize`, what every metric does to its inputs first)."""
    from cfanet.images import quantize

    return torch.from_numpy(quantize(image))


def batched_function(metric: Metric) -> Callable | None:
    """The metric module's batched function, when it has one (see the module docstring)."""
    where = BATCHED_FUNCTIONS.get(metric.name)
    if where is None:
        return None
    module = importlib.import_module(where[0])
    function = getattr(module, where[1], None)
    return function if callable(function) else None


def _unit(image: torch.Tensor, device: torch.device) -> torch.Tensor:
    """8-bit (1, 3, H, W) -> float32 in [0, 1] on `device`: exactly what 8-bit PNGs decode to, and
    quantised back to the same 8-bit values by every metric."""
    return image.to(device).to(torch.float32).div_(255.0)


def score_batch(spec: ScoreSpec, scale: int, inputs: ScoreInputs, device: torch.device | str = "cpu", *,
                batched: bool | None = None) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Every metric of `spec` on every image of `inputs`, on `device`: one {"metric|convention":
    value} per image (a metric whose references an image's scene lacks is left out, as
    `pipelines.scoring.compute_scores` does) and the seconds spent per metric.

    `batched`: call metrics that have a batched function once per batch and convention (default:
    on CUDA only; see the module docstring)."""
    device = torch.device(device)
    if batched is None:
        batched = device.type == "cuda"
    count = inputs.images.shape[0]
    values: list[dict[str, float]] = [{} for _ in range(count)]
    seconds: dict[str, float] = {}
    forms: dict[tuple[str, int], object] = {}  # converted images and references, made once per batch

    def converted(kind: str, index: int):
        if (kind, index) not in forms:
            if kind == "image8":
                forms[kind, index] = inputs.images[index:index + 1].to(device)
            elif kind == "image":
                forms[kind, index] = _unit(inputs.images[index:index + 1], device)
            else:
                form = (lambda x: x.to(device)) if kind == "refs8" else (lambda x: _unit(x, device))
                r = inputs.references[index]
                forms[kind, index] = References(*(None if x is None else form(x)
                                                  for x in (r.gt, r.gt_over, r.gt_under)))
        return forms[kind, index]

    for metric in spec.resolved():
        start = time.perf_counter()
        todo = [i for i in range(count) if metric.available(inputs.references[inputs.scene_of[i]])]
        if not todo:
            continue
        function = batched_function(metric) if batched else None
        for convention in metric.conventions(spec.conventions):
            if function is not None:
                images = torch.cat([converted("image8", i) for i in todo])
                refs = [converted("refs8", inputs.scene_of[i]) for i in todo]
                if metric.needs == "gt":
                    scores = function(images, torch.cat([r.gt for r in refs]), convention, scale)
                else:  # sources (N, K, 3, H, W), then the fused images
                    scores = function(torch.stack([torch.cat([r.gt_over, r.gt_under]) for r in refs]), images)
                scores = [float(v) for v in scores.tolist()]
            else:
                scores = [metric.compute(converted("image", i), converted("refs", inputs.scene_of[i]), convention,
                                         scale) for i in todo]
            for i, value in zip(todo, scores):
                values[i][metric_key(metric.name, convention)] = value
        seconds[metric.name] = time.perf_counter() - start  # values are host floats: the device is done
    return values, seconds


def score_on(worker, spec: ScoreSpec, scale: int,
             inputs: ScoreInputs) -> tuple[list[dict[str, float]], dict[str, float]]:
    """`score_batch` in the process of a `pipelines.compute.StageWorker` (what the executors call):
    on the worker's device, with its CPU thread count. Kept out of `StageWorker` because that
    module's source is part of every stage's cache key (`pipelines.codehash`)."""
    if worker.threads and torch.get_num_threads() != worker.threads:
        torch.set_num_threads(worker.threads)
    with torch.no_grad():
        return score_batch(spec, scale, inputs, worker.device)


__all__ = ["BATCHED_FUNCTIONS", "DEFAULT_SCORE_BATCH", "ScoreBatch", "ScoreBatchError", "ScoreInputs", "ScoreItem",
           "ScoreResult", "ScoreSpec", "batched_function", "score_batch", "score_on", "to_uint8"]
