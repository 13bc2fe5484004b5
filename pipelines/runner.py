"""Run pipelines: prepare weights, walk the stage graph of every scene through the stage cache,
score the final images and store everything in the results database.

A run is resumable by construction: every stage output lands in the content-addressed cache
atomically as soon as it is computed, so a run that is killed and started again recomputes only
what had not finished, and ends with the same results.

What a long run on a shared machine needs, and where it is handled:

- **Kills.** Stage outputs, metric values, published images and demo weights are all written to a
  uniquely named temporary file and renamed into place; database writes are single transactions.
  A killed run leaves complete files or none, and its database row says `running` (reports read
  finished runs only).
- **Concurrent runs** on one cache and database: renames are atomic, SQLite runs in WAL mode with
  retries, and (local executor) the file locks of a batch's stages make a second process wait for
  the first one's entries instead of computing the same stages again.

Work is planned, then executed: the stages still missing from the cache become batches (one method
and scale, up to `runtime.batch_size` scenes of equal size), level by level (stages that read the
scenes' images, then stages that read their outputs: `pipelines.planning`); an executor
(`pipelines.executors`: local or Ray) computes them and this process alone stores the outputs.
Scoring is planned and executed the same way: the final images whose metric values are not in the
metric cache (`pipelines.scoring`) become score batches (one scale and size, scene by scene), the
executor scores them on its workers' devices (`pipelines.score_tasks`) and this process alone
writes the values (the metric cache, then the results database) and publishes the images
(`pipelines.publishing`), so results land the same whatever the executor; the manifest
(`pipelines.manifest`) records how, with the time spent scoring (`scoring`).
- **Bad inputs** fail before any work where they can be seen up front: every scene is loaded and
  checked (files readable, sizes, names usable as file names) and every model is loaded with its
  weights before the first stage. A failure that only shows when a stage runs (an image smaller
  than a model's window) is a `StageError` naming the scene, the method and the input files;
  everything computed before it stays in the cache, so a rerun after fixing the input resumes.
- **GPU out of memory** during a stage: the model's tile size is halved (from its automatic tile,
  or the whole image) and the stage retried, down to a minimum tile; only then does the run fail.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from tqdm import tqdm

from pipelines.cache import StageCache, remove_stale_temporaries
from pipelines.catalog import PipelineSpec, find_pipeline, profile_grid
from pipelines.codehash import method_code_digest
from pipelines.compute import (OutOfMemoryStageError, StageWorker, WeightsFile, choose_device, first_line,
                               is_out_of_memory, runtime_options)  # noqa: F401 - is_out_of_memory: part of this module's API
from pipelines.config import BenchmarkConfig, ConfigError, Profile
from pipelines.datasets import open_profile_dataset
from pipelines.executors import BatchError, LocalExecutor, StageBatch
from pipelines.graph import Stage
from pipelines.manifest import environment, grid_record, profile_identity, weights_record
from pipelines.model_files import trained_scenes
from pipelines.planning import (PlannedScene, ScannedScene, check_scene_sizes, components_of, load_scanned,
                                ScoreBatcher, plan_stages, scan_scenes, score_batch_size, stage_batches)
from pipelines.publishing import Publisher
from pipelines.registry import check_protocols, check_weights_keys, methods
from pipelines.score_tasks import References, ScoreBatch, ScoreBatchError, ScoreInputs, ScoreItem, to_uint8
from pipelines.scoring import cached_scores, describe_metrics, metrics_cache_key, score_spec, store_scores
from pipelines.store import ResultsStore
from pipelines.weights import ResolvedWeights, check_paper_inputs, resolve_weights


class TrainedScenesError(ValueError):
    """A method's weights were trained on scenes the run would score (see `Runner.check_trained_scenes`)."""


class StageError(RuntimeError):
    """A stage failed on one scene; the message (one line) names the scene, the method and the
    scene's input files, and says that the finished stages are kept."""


class ScoringError(StageError):
    """Scoring a batch of final images failed; the message (one line) names the scenes and the
    pipelines, and says that the metric values finished before are kept."""


def ensure_writable(folder: Path, source: str, key: str) -> None:
    """Check, before any work and without creating anything, that files can be written in `folder`
    (or, where it does not exist yet, in its nearest existing parent); a ConfigError naming the key
    and the folder otherwise (read-only mount, immutable folder, no permission)."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    probe = existing / f".write-test-{uuid.uuid4().hex}.part"
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "not a folder", str(existing))
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(source, key, f"{folder}: cannot write there ({exc.strerror or exc}); choose a writable "
                                       f"folder") from None


def scene_with_files(scanned: dict[tuple[int, str], ScannedScene], scale: int, name: str) -> str:
    """"scene 'name' (its input files)" for an error message; the files from `scanned` when known."""
    entry = scanned.get((scale, name))
    files = entry.files if entry is not None else {}
    return f"scene {name!r}" + (f" ({', '.join(str(v) for v in files.values())})" if files else "")


def batch_failure(error: BatchError, scanned: dict[tuple[int, str], ScannedScene], finished: int) -> StageError:
    """A one-line StageError naming the scenes of the failed batch, their input files (from
    `scanned`, by (scale, scene name)) and the method; `finished`: stages this run finished."""
    batch, cause = error.batch, error.cause
    text = cause if isinstance(cause, str) else first_line(cause)
    if isinstance(cause, OutOfMemoryStageError):
        return StageError(f"{text}; the {finished} stage(s) this run finished are kept in the cache")
    where = [scene_with_files(scanned, batch.scale, stage.scene) for stage in batch.stages]
    return StageError(f"{'; '.join(where)}: {batch.method} failed: {text}; the {finished} "
                      f"stage(s) this run finished and everything cached before are kept: fix the input and "
                      f"run again to resume")


def score_failure(error: ScoreBatchError, scanned: dict[tuple[int, str], ScannedScene], finished: int) -> ScoringError:
    """A one-line ScoringError naming the scenes of the failed score batch (with their input files,
    from `scanned` by (scale, scene name)) and its pipelines; `finished`: images this run scored."""
    batch, cause = error.batch, error.cause
    text = cause if isinstance(cause, str) else first_line(cause)
    where = [scene_with_files(scanned, batch.scale, name) for name in batch.scenes()]
    pipelines = ", ".join(dict.fromkeys(item.pipeline for item in batch.items))
    return ScoringError(f"{'; '.join(where)}: scoring {pipelines} failed: {text}; the metric values of the "
                        f"{finished} image(s) this run scored and everything cached before are kept: fix the "
                        f"cause and run again to resume")


KEPT_SCENES = 16  # scenes whose references the scoring keeps in memory before it sends partial batches


@dataclass
class RunSummary:
    run_id: str
    output_dir: Path
    database: Path
    stages_total: int = 0
    stages_computed: int = 0
    compute_seconds: float = 0.0
    wall_seconds: float = 0.0
    results: list[tuple] = field(default_factory=list)
    # stages retried with smaller tiles after running out of memory: (method, scene, [tiles tried])
    memory_retries: list[tuple[str, str, list[int]]] = field(default_factory=list)
    # scenes whose HR images were cropped to a multiple of the scale: "x2/name" -> (before, after)
    modcropped: dict[str, tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=dict)
    # scoring: final images (distinct metric cache keys) and how many this run scored, in how many
    # batches; the seconds the workers spent on them (all metrics, and per metric) and the wall time
    # of the scoring phase (metric cache reads, scene loads, publishing, scoring, writing the values)
    scores_total: int = 0
    scores_computed: int = 0
    score_batches: int = 0
    score_seconds: float = 0.0
    metric_seconds: dict[str, float] = field(default_factory=dict)
    scoring_wall_seconds: float = 0.0

    def scoring_record(self) -> dict:
        """The manifest's `scoring` entry (the fields above), from which a report can give the share
        of the wall time spent on metrics."""
        return {"images": self.scores_total, "computed": self.scores_computed, "batches": self.score_batches,
                "compute_seconds": self.score_seconds, "metric_seconds": dict(self.metric_seconds),
                "wall_seconds": self.scoring_wall_seconds}


class Runner:
    """Runs a profile's pipelines. `weights_trainer` overrides how demo weights are made (tests).

    `min_tile` is the smallest tile side (input pixels) the out-of-memory retry goes down to (it is
    also kept at least twice the model's tile overlap).
    """

    min_tile: int = 32

    def __init__(self, config: BenchmarkConfig, profile_name: str | None = None, *, weights_trainer=None,
                 show_progress: bool = True, log=print, executor: str | None = None,
                 allow_trained_scenes: bool = False):
        self.config = config
        self.allow_trained_scenes = allow_trained_scenes
        self.trained_scene_overlap: dict[str, dict[str, list[str]]] = {}
        self.profile = config.profile(profile_name)
        self.methods = methods(config)  # every registered method, the config's own included
        self.grid = profile_grid(self.methods, self.profile.grid, config.source, self.profile.name)
        check_weights_keys(config, self.profile, self.methods)  # before anything is created on disk
        check_protocols(config, self.profile, self.methods)
        self.device = choose_device(self.profile.runtime.device)
        self.output_dir = Path(self.profile.output_dir)
        for folder, key in ((self.output_dir, "output_dir"), (Path(self.profile.cache_dir), "cache_dir")):
            ensure_writable(folder, config.source, f"profiles.{self.profile.name}.{key}")
        self.cache = StageCache(Path(self.profile.cache_dir) / "stages")
        # copies, not hard links: editing a published image must never touch the cache
        self.publisher = Publisher(self.output_dir, self.cache.root)
        self.weights_trainer = weights_trainer
        self.show_progress = show_progress
        self.log = log
        self.executor_name = executor or self.profile.runtime.executor
        self.ray_options: dict = {}  # extra RayExecutor arguments (tests: num_cpus)
        self._weights: dict[tuple[str, int], ResolvedWeights | None] = {}
        self._token = uuid.uuid4().hex  # names this run's models in the per-process pool
        self._worker: StageWorker | None = None
        self._pipelines: list[PipelineSpec] = []

    # -- preparation ------------------------------------------------------------------------------

    def pipelines_for(self, names: list[str] | None) -> list[PipelineSpec]:
        """The named pipelines (any composition of registered methods), or the profile's grid."""
        if not names:
            return self.grid.pipelines()
        return [find_pipeline(name, self.methods, self.grid) for name in names]

    def check_tile_size(self, names: list[str]) -> None:
        """A configured `runtime.tile_size` must exceed the tile overlap of every tiling method of the
        run (tiles must advance); checked before any work, naming the key."""
        runtime = self.profile.runtime
        if runtime.tile_size <= 0:
            return
        for name in names:
            spec = self.methods.specs[name]
            overlap = runtime.tile_overlap or getattr(spec.cls, "default_tile_overlap", 0)
            if spec.tiles and runtime.tile_size <= overlap:
                raise ConfigError(self.config.source, f"profiles.{self.profile.name}.runtime.tile_size",
                                  f"{runtime.tile_size} is not larger than {name}'s tile overlap of {overlap} pixels "
                                  f"({'runtime.tile_overlap' if runtime.tile_overlap else 'its default'}); use a "
                                  f"larger tile, or 0 for automatic")

    def prepare_weights(self, methods: list[str]) -> dict[tuple[str, int], ResolvedWeights | None]:
        """The weights of every method at every scale: configured files, or demo weights (made on
        first use). Must precede `worker()`, `load_models()` and `plan()`."""
        for scale in self.profile.scales:
            for name in methods:
                if (name, scale) not in self._weights:
                    self._weights[(name, scale)] = resolve_weights(
                        self.profile, self.methods.specs[name], scale, Path(self.profile.cache_dir),
                        str(self.device), trainer=self.weights_trainer)
        return self._weights

    def check_trained_scenes(self, methods: list[str], datasets: dict) -> None:
        """Refuse to score a method on scenes its configured checkpoint records having been trained
        (or validated) on (`model_files.trained_scenes`): such scores are not test scores. With
        `allow_trained_scenes` the overlap is only recorded in the manifest (and logged)."""
        scored = {scale: set(dataset.names()) for scale, dataset in datasets.items()}
        problems = []
        for (name, scale), weights in sorted(self._weights.items(), key=lambda item: (item[0][1], item[0][0])):
            if weights is None or weights.source != "configured" or name not in methods:
                continue
            recorded = trained_scenes(weights.path)
            overlap = {role: sorted(set(names) & scored[scale], key=str) for role, names in recorded.items()}
            overlap = {role: names for role, names in overlap.items() if names}
            if not overlap:
                continue
            self.trained_scene_overlap[f"{name}.x{scale}"] = overlap
            said = "; ".join(f"{len(names)} {'training' if role == 'train' else 'validation'} scene(s) "
                             f"({', '.join(names[:5])}{' ...' if len(names) > 5 else ''})"
                             for role, names in overlap.items())
            problems.append(f"{name} x{scale} ({weights.path}): {said}")
        if not problems:
            return
        if self.allow_trained_scenes:
            self.log("warning: scoring methods on scenes their weights were trained on (--allow-trained-scenes; "
                     "recorded in the manifest): " + " | ".join(problems))
            return
        raise TrainedScenesError(
            "these weights were trained on scenes this run would score, so their scores would not be test scores: "
            + " | ".join(problems) + f". Score the test split (profiles.{self.profile.name}.dataset.split or "
            f"split_file), or pass --allow-trained-scenes to score them anyway (recorded in the manifest)")

    def identity(self, name: str, scale: int) -> dict:
        """What identifies a method's computation in the stage cache: its weights' SHA-256, its
        configuration and scale, the runtime options it is built with (tiling, precision), the
        numerical settings (`numerics`) and the digest of its code (its module's import closure and
        the shared protocol code)."""
        spec = self.methods.specs[name]
        weights = self._weights.get((name, scale))
        ident = {"config": {"scale": scale}, "weights_sha256": None}
        if weights is not None:
            ident = weights.identity()
        ident["config"] = {**ident["config"], **runtime_options(spec, self.profile.runtime, self.device),
                           **self.numerics()}
        ident["code"] = method_code_digest(spec.module)
        return ident

    def numerics(self) -> dict:
        """The settings that change floating-point summation order and so can move an output by an
        8-bit level: the device type, the batch size (scenes per forward pass) and, on the CPU, the
        intra-op thread count of the computing processes. They are part of every stage's key."""
        runtime = self.profile.runtime
        numerics = {"device": self.device.type, "batch_size": runtime.batch_size}
        if self.device.type == "cpu":
            remote = self.executor_name == "ray" and runtime.cpus_per_task
            numerics["threads"] = runtime.cpus_per_task if remote else torch.get_num_threads()
        return numerics

    def worker(self) -> StageWorker:
        """The picklable description of how this run computes stages (settings, methods, weights)."""
        weights = {key: None if w is None else WeightsFile(str(w.path), w.sha256, w.size)
                   for key, w in self._weights.items()}
        if self._worker is None or self._worker.weights != weights:
            specs = {name: self.methods.specs[name] for name, _ in weights}
            self._worker = StageWorker(self.profile.runtime, str(self.device), specs, weights, min_tile=self.min_tile,
                                       token=self._token)
        return self._worker

    def load_models(self, methods: list[str]) -> None:
        """Build every method with its weights now, so that a wrong or hostile weights file fails
        before any stage runs (naming the file)."""
        for scale in self.profile.scales:
            for name in methods:
                self.worker().instance(name, scale)

    def plan(self, specs: list[PipelineSpec], scanned: list[ScannedScene]) -> list[PlannedScene]:
        """Every scene's stage graph and the stages the pipelines need (weights must be prepared)."""
        names = components_of(specs)
        identities = {(n, s): self.identity(n, s) for n in names for s in self.profile.scales}
        return plan_stages(specs, scanned, identities)

    def manifest(self) -> dict:
        """What the run is (environment, configuration, weights, compared methods, metrics)."""
        return {**profile_identity(self.config, self.profile), **environment(self.device),
                **weights_record(self._weights, self.worker().instances()),
                "grid": grid_record(self.grid, self._pipelines, self.methods, self.profile.runtime),
                "trained_scene_overlap": self.trained_scene_overlap,
                "metrics": describe_metrics(self.profile.metrics)}

    # -- execution --------------------------------------------------------------------------------

    def compute_stage(self, stage: Stage, scale: int, inputs: list[torch.Tensor]) -> tuple[torch.Tensor, list[int]]:
        """Run one stage in this process (out-of-memory retries with smaller tiles included).
        Returns the output and the tile sides it had to retry with."""
        try:
            return self.worker().compute(stage.method, scale, inputs, what=f"scene {stage.scene!r}", log=self.log)
        except OutOfMemoryStageError as exc:
            raise StageError(str(exc)) from exc

    def _executor(self, name: str):
        """The executor `name` ("local" or "ray") for this run."""
        worker = self.worker()
        if name == "ray":
            from pipelines.executors import RayExecutor

            runtime = self.profile.runtime
            # Remote hosts choose their own device from the profile's setting.
            remote = replace(worker, device_setting=runtime.device)
            return RayExecutor(remote, self.cache, self.log, address=runtime.ray_address,
                               gpus_per_task=runtime.gpus_per_task, cpus_per_task=runtime.cpus_per_task,
                               workers=runtime.workers,
                               **self.ray_options)
        return LocalExecutor(worker, self.cache, self.log)

    def run(self, pipelines: list[str] | None = None, force: bool = False) -> RunSummary:
        """Run the named pipelines (default: the profile's grid) on every scene and scale of the profile."""
        wall_start = time.perf_counter()
        specs = self.pipelines_for(pipelines)
        self._pipelines = specs
        methods = components_of(specs)
        check_paper_inputs(self.profile, [self.methods.specs[name] for name in methods])
        self.check_tile_size(methods)
        datasets = {scale: open_profile_dataset(self.profile, scale) for scale in self.profile.scales}
        for dataset in datasets.values():
            dataset.names()  # fail early on a malformed dataset folder or an unusable scene name
        database = self.output_dir / "results.sqlite"
        summary = RunSummary("", self.output_dir, database)
        scanned = scan_scenes(datasets, summary.modcropped, self.log, self.show_progress)
        check_scene_sizes(scanned, self.profile.metrics, {name: self.methods.specs[name] for name in methods})
        cache_dir = Path(self.profile.cache_dir)
        removed = sum(remove_stale_temporaries(folder) for folder in (
            self.cache.root, cache_dir / "metrics", cache_dir / "demo_weights", self.output_dir / "images"))
        if removed:
            self.log(f"removed {removed} temporary file(s) left by killed runs (older than an hour)")
        with ResultsStore(database):
            pass  # a damaged or unusable results database fails here, before weights are made
        self.log(f"preparing weights for {len(methods)} methods ({self.profile.name} profile)")
        self.prepare_weights(methods)
        self.check_trained_scenes(methods, datasets)
        self.load_models(methods)
        plan = self.plan(specs, scanned)
        with ResultsStore(database) as store:
            run_id = store.start_run(self.profile.name, self.manifest())
            summary.run_id = run_id
            summary.stages_total = sum(len(p.stages) for p in plan)
            forced = {stage.key for p in plan for stage in p.stages} if force else set()
            rows: list[tuple] = []
            status, error, executor = "failed", None, None

            def executor_now():
                nonlocal executor
                if executor is None:
                    executor = self._executor(self.executor_name)
                return executor

            try:
                todo = set()
                for planned in plan:
                    for stage in planned.stages:
                        if stage.key in forced or not self.cache.has(stage.key):
                            todo.add(stage.key)
                        else:
                            store.record_timing(run_id, stage.key, stage.method, stage.scene, 0.0, cached=True,
                                                scale=planned.scanned.scale, inputs=stage.inputs)
                with tqdm(total=summary.stages_total, initial=summary.stages_total - len(todo), desc="stages",
                          unit="stage", disable=not self.show_progress) as bar:
                    if todo:
                        self._execute(executor_now(), stage_batches(plan, todo, self.profile.runtime.batch_size), plan,
                                      datasets, forced, store, run_id, summary, bar)
                rows = self._score_and_publish(plan, datasets, specs, executor_now, summary)
                status = "finished"
            except KeyboardInterrupt:
                status, error = "interrupted", "interrupted"
                raise
            except BaseException as exc:
                error = first_line(exc)
                raise
            finally:
                if executor is not None:
                    executor.close()
                summary.results = rows
                summary.wall_seconds = time.perf_counter() - wall_start
                manifest = self.manifest()
                manifest.update(stages_total=summary.stages_total, stages_computed=summary.stages_computed,
                                compute_seconds=summary.compute_seconds, wall_seconds=summary.wall_seconds,
                                pipelines=[s.name for s in specs], executor=self.executor_name,
                                modcropped={k: [list(a), list(b)] for k, (a, b) in summary.modcropped.items()},
                                memory_retries=[list(r) for r in summary.memory_retries],
                                scoring=summary.scoring_record())
                if error is not None:
                    manifest["error"] = error
                if status == "finished":
                    store.record_results(run_id, rows)
                    store.finish_run(run_id, manifest)
                else:
                    try:  # keep what was scored, under a status that reports never read
                        store.record_results(run_id, rows)
                        store.finish_run(run_id, manifest, status=status)
                    except Exception:  # noqa: BLE001 - the original error matters more
                        pass
        return summary

    def _execute(self, executor, levels: list[list[StageBatch]], plan: list[PlannedScene], datasets: dict,
                 forced: set[str], store: ResultsStore, run_id: str, summary: RunSummary, bar) -> None:
        """Compute the batches level by level with `executor`, storing every output in the stage
        cache (and its timing in the database) as it arrives."""
        scanned = {(p.scanned.scale, p.scanned.name): p.scanned for p in plan}
        scale_of = {stage.key: p.scanned.scale for p in plan for stage in p.stages}
        scene_images: dict[tuple[int, str], dict[str, torch.Tensor]] = {}

        def load_inputs(stage: Stage) -> list[torch.Tensor]:
            where = (scale_of[stage.key], stage.scene)
            if where not in scene_images:  # the LR pair only: small, and read by many stages
                scene = load_scanned(datasets, scanned[where])
                scene_images[where] = {scanned[where].over_key: scene.over, scanned[where].under_key: scene.under}
            images = scene_images[where]
            inputs = [images[key] if key in images else self.cache.get(key) for key in stage.inputs]
            if any(x is None for x in inputs):
                raise RuntimeError(f"stage {stage.method} on {stage.scene}: an input is missing from the cache")
            return inputs

        for batches in levels:
            try:
                for result in executor.run(batches, load_inputs, forced):
                    for stage in result.found_cached:
                        store.record_timing(run_id, stage.key, stage.method, stage.scene, 0.0, cached=True,
                                            scale=scale_of[stage.key], inputs=stage.inputs)
                    share = result.seconds / max(len(result.computed), 1)
                    for stage, output in zip(result.computed, result.outputs):
                        metadata = {"method": stage.method, "kind": stage.kind, "scene": stage.scene,
                                    "inputs": list(stage.inputs), "seconds": share, "run_id": run_id}
                        if result.retried:
                            metadata["tile_after_out_of_memory"] = result.retried[-1]
                            summary.memory_retries.append((stage.method, stage.scene, list(result.retried)))
                        self.cache.put(stage.key, output, metadata)
                        store.record_timing(run_id, stage.key, stage.method, stage.scene, share, cached=False,
                                            scale=scale_of[stage.key], inputs=stage.inputs)
                        summary.stages_computed += 1
                    summary.compute_seconds += result.seconds
                    bar.update(len(result.computed) + len(result.found_cached))
                    bar.set_postfix_str(f"x{result.batch.scale} {result.batch.method}")
            except BatchError as exc:
                raise batch_failure(exc, scanned, summary.stages_computed) from exc

    def _score_and_publish(self, plan: list[PlannedScene], datasets: dict, specs: list[PipelineSpec],
                           executor: Callable[[], object], summary: RunSummary) -> list[tuple]:
        """Publish every scene and every pipeline's final image, and score the final images: values
        from the metric cache where they are intact, the others as score batches on `executor()`
        (made only when there is one to score), each batch's values written to the metric cache as
        it comes back. Each scene is read once: its 8-bit references wait in memory until its
        images are sent (about `KEPT_SCENES` scenes at most). Returns the result rows, in plan order."""
        start = time.perf_counter()
        config, cache_dir = self.profile.metrics, Path(self.profile.cache_dir)
        batcher = ScoreBatcher(score_batch_size(self.profile.runtime))
        scanned = {(p.scanned.scale, p.scanned.name): p.scanned for p in plan}
        images: list[tuple[str, str, str]] = []  # (scene label, pipeline, metric key) of every final image
        values: dict[str, dict[str, float]] = {}  # metric key -> values (cached, or scored by this run)
        waiting: Counter = Counter()  # metric key being scored -> final images waiting for it
        references: dict[tuple[int, str], References] = {}  # (scale, scene) -> 8-bit references, until sent
        unsent: Counter = Counter()  # (scale, scene) -> its images not sent yet
        bar = tqdm(total=len(plan) * len(specs), desc="scoring", unit="image", disable=not self.show_progress)

        def batches():
            for planned in plan:
                entry = planned.scanned
                scene = load_scanned(datasets, entry)
                self.publisher.publish_scene(scene, entry.scale)
                where, size = (entry.scale, entry.name), tuple(n * entry.scale for n in entry.lr_size)
                for spec in specs:
                    final = planned.graph.finals[spec.name]
                    if not self.cache.has(final):
                        raise RuntimeError(f"scene {entry.name!r}: the final image of {spec.name} is missing from the "
                                           f"cache (removed while the run was going?); run again")
                    key = metrics_cache_key(scene, final, config)
                    images.append((f"x{entry.scale}/{entry.name}", spec.name, key))
                    self.publisher.publish_final(final, entry.scale, spec.name, entry.name)
                    if key in values:
                        bar.update(1)
                    elif key in waiting:
                        waiting[key] += 1
                    elif (cached := cached_scores(cache_dir, key)) is not None:
                        values[key] = cached
                        bar.update(1)
                    else:
                        waiting[key] = 1
                        if where not in references:
                            references[where] = References(*(None if x is None else to_uint8(x)
                                                             for x in (scene.gt, scene.gt_over, scene.gt_under)))
                        unsent[where] += 1
                        full = batcher.add(ScoreItem(key, final, entry.scale, entry.name, size, spec.name))
                        if full is not None:
                            yield full
                if len(references) > KEPT_SCENES:  # many sizes: send the partial batches, free their scenes
                    yield from batcher.flush()
            yield from batcher.flush()

        def load_inputs(batch: ScoreBatch) -> ScoreInputs:
            scenes = batch.scenes()
            refs = [references[(batch.scale, name)] for name in scenes]
            pixels = []
            for item in batch.items:
                output = self.cache.get(item.final)
                if output is None:
                    raise RuntimeError(f"the final image of {item.pipeline} is missing from the cache (removed while "
                                       f"the run was going?); run again")
                if tuple(output.shape[-2:]) != tuple(batch.size):
                    raise ValueError(f"the final image of {item.pipeline} on scene {item.scene!r} is "
                                     f"{output.shape[-2]}x{output.shape[-1]}, not the scene's HR size "
                                     f"{batch.size[0]}x{batch.size[1]}")
                pixels.append(to_uint8(output))
                unsent[(batch.scale, item.scene)] -= 1
            for name in scenes:
                if unsent[(batch.scale, name)] == 0:
                    references.pop((batch.scale, name), None)
            index = {name: i for i, name in enumerate(scenes)}
            return ScoreInputs(torch.cat(pixels), refs, tuple(index[item.scene] for item in batch.items))

        stream = batches()
        try:
            first = next(stream, None)  # a warm run finds every value cached here, and starts no executor
            if first is not None:
                try:
                    for result in executor().score(score_spec(config), itertools.chain([first], stream), load_inputs):
                        for item, scores in zip(result.batch.items, result.values):
                            store_scores(cache_dir, item.key, scores)
                            values[item.key] = scores
                            bar.update(waiting.pop(item.key))
                        summary.scores_computed += len(result.batch.items)
                        summary.score_batches += 1
                        summary.score_seconds += result.seconds
                        for name, seconds in result.metric_seconds.items():
                            summary.metric_seconds[name] = summary.metric_seconds.get(name, 0.0) + seconds
                        bar.set_postfix_str(f"x{result.batch.scale} {len(result.batch.items)} image(s)")
                except ScoreBatchError as exc:
                    raise score_failure(exc, scanned, summary.scores_computed) from exc
        finally:
            stream.close()
            bar.close()
            summary.scores_total = len(values) + len(waiting)
            summary.scoring_wall_seconds = time.perf_counter() - start
        return [(label, pipeline, metric.split("|")[0], metric.split("|")[1], value)
                for label, pipeline, key in images for metric, value in values[key].items()]
