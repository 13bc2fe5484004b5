"""Executors: where batches of stages, and of final images to score, are computed.

The runner plans a run as batches of stages (one method, one scale, scenes of equal size) and
hands them to an executor (`run`), which yields a `BatchResult` per batch as it finishes; then the
final images whose metric values are not cached as score batches (`score`, one `ScoreResult` of
plain floats per batch: `pipelines.score_tasks`). Whatever the executor, only the runner (the
driver process) writes the stage cache, the metric cache, the published images and the results
database, with the same code; so cache entries and results land exactly as with the local
executor, and a run can switch executors and resume from the same cache.

- `LocalExecutor` computes in this process, one batch at a time, holding the cache locks of the
  batch's stages while it computes, so a concurrent run on the same cache waits for the entries
  instead of computing them again.
- `RayExecutor` (extra `distributed`) fans batches out as Ray tasks, `runtime.gpus_per_task` GPUs
  each on a cluster with GPUs, with a bounded number in flight. Workers need no shared file
  system: inputs and outputs travel through Ray's object store and each weights file is shipped
  once. Score batches are Ray tasks with the same resources (8-bit images in, floats out). Two
  runs on one cache may compute a stage twice under Ray (there is no cluster-wide lock); both
  write identical entries by atomic renames.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from pipelines.cache import StageCache, file_lock
from pipelines.compute import StageWorker, first_line, weights_files_of
from pipelines.graph import Stage
from pipelines.score_tasks import ScoreBatch, ScoreBatchError, ScoreInputs, ScoreResult, ScoreSpec, score_on


@dataclass(frozen=True)
class StageBatch:
    """Stages of one method at one scale whose inputs have equal sizes: one forward pass."""

    method: str
    kind: str
    scale: int
    stages: tuple[Stage, ...]

    def describe(self) -> str:
        scenes = ", ".join(repr(s.scene) for s in self.stages)
        return f"scene{'s' if len(self.stages) > 1 else ''} {scenes}"


@dataclass
class BatchResult:
    """What became of a batch: `computed` stages with their outputs (float32 CPU), and stages
    found already in the cache when their turn came (another process computed them)."""

    batch: StageBatch
    computed: list[Stage] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    seconds: float = 0.0
    retried: list[int] = field(default_factory=list)
    found_cached: list[Stage] = field(default_factory=list)


class BatchError(RuntimeError):
    """A batch failed; `batch` says which, `cause` is the original error (or its text)."""

    def __init__(self, batch: StageBatch, cause: BaseException | str):
        self.batch, self.cause = batch, cause
        super().__init__(cause if isinstance(cause, str) else first_line(cause))


InputLoader = Callable[[Stage], list[torch.Tensor]]
ScoreLoader = Callable[[ScoreBatch], ScoreInputs]


def _pending(batch: StageBatch, cache: StageCache, forced: set[str]) -> tuple[list[Stage], list[Stage]]:
    """Split a batch into stages to compute and stages already cached (not forced)."""
    todo, cached = [], []
    for stage in batch.stages:
        (todo if stage.key in forced or not cache.has(stage.key) else cached).append(stage)
    return todo, cached


@contextlib.contextmanager
def _locks(cache: StageCache, keys: Iterable[str]) -> Iterator[None]:
    """Hold the cache locks of `keys`, taken in sorted order, each lock file once (one process
    holds one batch's locks at a time, so the global order rules out deadlocks)."""
    with contextlib.ExitStack() as stack:
        for prefix in sorted({key[:2] for key in keys}):
            stack.enter_context(file_lock(cache.root / prefix / ".lock"))
        yield


class LocalExecutor:
    """Computes batches in this process, in order."""

    name = "local"

    def __init__(self, worker: StageWorker, cache: StageCache, log: Callable[[str], None] = print):
        self.worker, self.cache, self.log = worker, cache, log

    def run(self, batches: list[StageBatch], load_inputs: InputLoader, forced: set[str]) -> Iterator[BatchResult]:
        for batch in batches:
            # The caller stores the outputs while this generator is suspended inside the locks.
            with _locks(self.cache, (s.key for s in batch.stages)):
                todo, cached = _pending(batch, self.cache, forced)
                result = BatchResult(batch, found_cached=cached)
                if todo:
                    start = time.perf_counter()
                    try:
                        inputs = [load_inputs(stage) for stage in todo]
                        outputs, retried = self.worker.compute_batch(batch.method, batch.scale, inputs,
                                                                     what=batch.describe(), log=self.log)
                    except Exception as exc:  # noqa: BLE001 - the runner names the batch and re-raises
                        raise BatchError(replace(batch, stages=tuple(todo)), exc) from exc
                    result.computed, result.outputs, result.retried = todo, outputs, retried
                    result.seconds = time.perf_counter() - start
                yield result

    def score(self, spec: ScoreSpec, batches: Iterable[ScoreBatch], load_inputs: ScoreLoader) -> Iterator[ScoreResult]:
        """Score the batches in this process, in order (a failure is a `ScoreBatchError`); the
        caller writes each result's values while this generator waits for the next batch."""
        for batch in batches:
            try:
                inputs = load_inputs(batch)
                start = time.perf_counter()
                values, metric_seconds = score_on(self.worker, spec, batch.scale, inputs)
            except Exception as exc:  # noqa: BLE001 - the runner names the batch and re-raises
                raise ScoreBatchError(batch, exc) from exc
            yield ScoreResult(batch, values, time.perf_counter() - start, metric_seconds)

    def close(self) -> None:
        pass


def _compute_remote(worker: StageWorker, method: str, scale: int, inputs: list[list[torch.Tensor]],
                    what: str) -> tuple[list[torch.Tensor], list[int], float]:
    """A Ray task: one batch on whatever device the worker process was given."""
    start = time.perf_counter()
    outputs, retried = worker.compute_batch(method, scale, inputs, what=what)
    return outputs, retried, time.perf_counter() - start


def _score_remote(worker: StageWorker, spec: ScoreSpec, scale: int,
                  inputs: ScoreInputs) -> tuple[list[dict[str, float]], dict[str, float], float]:
    """A Ray task: one score batch on whatever device the worker process was given; plain floats back."""
    start = time.perf_counter()
    values, metric_seconds = score_on(worker, spec, scale, inputs)
    return values, metric_seconds, time.perf_counter() - start


def import_ray():
    """The `ray` module, or an error that says how to install it."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("the Ray executor needs Ray: pip install 'cfanet-bench[distributed]' "
                           "(or pip install 'ray>=2.9')") from None
    return ray


class RayExecutor:
    """Fans batches out as Ray tasks; yields results as they finish.

    Connects to `runtime.ray_address` (else $RAY_ADDRESS, else starts a local instance, stopped
    again by `close`). At most `in_flight` batches are submitted at a time (default: twice the
    cluster's task slots times `runtime.workers`), so the driver's memory stays bounded.
    """

    name = "ray"

    def __init__(self, worker: StageWorker, cache: StageCache, log: Callable[[str], None] = print, *,
                 address: str = "", gpus_per_task: float = 1.0, cpus_per_task: int = 0, workers: int = 1,
                 num_cpus: int | None = None, in_flight: int | None = None):
        ray = import_ray()
        self.ray, self.cache, self.log = ray, cache, log
        self._started = False
        if not ray.is_initialized():
            options = {"address": address} if address else {"num_cpus": num_cpus}
            ray.init(**options, include_dashboard=False, logging_level="ERROR", log_to_driver=True,
                     configure_logging=True)
            self._started = True
        resources = ray.cluster_resources()
        gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 1))
        nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
        node_cpus = max((int(n.get("CPU", 0)) for n in nodes), default=1) or 1
        node_gpus = max((float(n.get("GPU", 0)) for n in nodes), default=0.0)
        use_gpus = gpus > 0 and worker.device_setting != "cpu" and gpus_per_task > 0
        # A task asking for more than the largest node has would wait forever: ask for what exists.
        self.num_gpus = min(gpus_per_task, node_gpus) if use_gpus else 0
        threads = cpus_per_task or torch.get_num_threads()
        if threads > node_cpus:
            log(f"ray executor: {threads} CPU threads per task asked for, but the largest node has {node_cpus}; "
                f"using {node_cpus} (CPU outputs may then differ from the local executor's in the last bit)")
            threads = node_cpus
        slots = int(gpus / self.num_gpus) if use_gpus else int(cpus // threads)
        self.in_flight = in_flight or max(1, 2 * max(slots, 1) * workers)
        # Each weights file goes into the object store once; workers on hosts without the file use it.
        shipped = {}
        for key, weights in worker.weights.items():
            if weights is not None:
                shipped[key] = replace(weights, bundle=ray.put(weights_files_of(Path(weights.path))))
            else:
                shipped[key] = None
        self.worker = replace(worker, weights=shipped, threads=threads)
        self.worker_ref = ray.put(self.worker)
        self.remote = ray.remote(num_cpus=threads, num_gpus=self.num_gpus, max_retries=1)(_compute_remote)
        self.score_remote = ray.remote(num_cpus=threads, num_gpus=self.num_gpus, max_retries=1)(_score_remote)
        log(f"ray executor: {int(cpus)} CPUs, {gpus:g} GPUs in the cluster; {threads} CPU(s) and "
            f"{self.num_gpus:g} GPU(s) per task, "
            f"up to {self.in_flight} batches in flight")

    def run(self, batches: list[StageBatch], load_inputs: InputLoader, forced: set[str]) -> Iterator[BatchResult]:
        ray = self.ray
        running: dict = {}  # object ref -> (batch, stages computed)
        queue = list(batches)

        def collect(ref) -> BatchResult:
            batch, todo = running.pop(ref)
            try:
                outputs, retried, seconds = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a task error: the runner names the batch
                cause = getattr(exc, "cause", None)
                raise BatchError(replace(batch, stages=tuple(todo)),
                                 cause if isinstance(cause, BaseException) else exc) from exc
            return BatchResult(batch, computed=todo, outputs=outputs, retried=retried, seconds=seconds)

        try:
            while queue or running:
                while queue and len(running) < self.in_flight:
                    batch = queue.pop(0)
                    todo, cached = _pending(batch, self.cache, forced)
                    if cached:
                        yield BatchResult(batch, found_cached=cached)
                    if todo:
                        inputs = [load_inputs(stage) for stage in todo]
                        ref = self.remote.remote(self.worker_ref, batch.method, batch.scale, inputs, batch.describe())
                        running[ref] = (batch, todo)
                if running:
                    done, _ = ray.wait(list(running), num_returns=1)
                    yield collect(done[0])
        finally:
            for ref in running:  # stop what is still running when the run stops early
                with contextlib.suppress(Exception):
                    ray.cancel(ref)

    def score(self, spec: ScoreSpec, batches: Iterable[ScoreBatch], load_inputs: ScoreLoader) -> Iterator[ScoreResult]:
        """Score the batches as Ray tasks, at most `in_flight` at a time, taking the next batch from
        `batches` only when there is room for it; results as they finish."""
        ray = self.ray
        running: dict = {}  # object ref -> batch
        pending = iter(batches)
        spec_ref = ray.put(spec)
        try:
            while True:
                while len(running) < self.in_flight and (batch := next(pending, None)) is not None:
                    try:
                        inputs = load_inputs(batch)
                    except Exception as exc:  # noqa: BLE001 - the runner names the batch
                        raise ScoreBatchError(batch, exc) from exc
                    running[self.score_remote.remote(self.worker_ref, spec_ref, batch.scale, inputs)] = batch
                if not running:
                    return
                done, _ = ray.wait(list(running), num_returns=1)
                batch = running.pop(done[0])
                try:
                    values, metric_seconds, seconds = ray.get(done[0])
                except Exception as exc:  # noqa: BLE001 - a task error: the runner names the batch
                    cause = getattr(exc, "cause", None)
                    raise ScoreBatchError(batch, cause if isinstance(cause, BaseException) else exc) from exc
                yield ScoreResult(batch, values, seconds, metric_seconds)
        finally:
            for ref in running:  # stop what is still running when the run stops early
                with contextlib.suppress(Exception):
                    ray.cancel(ref)

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()
            self._started = False
