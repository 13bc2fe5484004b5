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
scenes' images, then stages that read their outputs); an executor (`pipelines.executors`: local
or Ray) computes them and this process alone stores the outputs, scores the final images and
publishes them, so results land the same whatever the executor.
- **Bad inputs** fail before any work where they can be seen up front: every scene is loaded and
  checked (files readable, sizes, names usable as file names) and every model is loaded with its
  weights before the first stage. A failure that only shows when a stage runs (an image smaller
  than a model's window) is a `StageError` naming the scene, the method and the input files;
  everything computed before it stays in the cache, so a rerun after fixing the input resumes.
- **GPU out of memory** during a stage: the model's tile size is halved (from its automatic tile,
  or the whole image) and the stage retried, down to a minimum tile; only then does the run fail.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from tqdm import tqdm

from cfanet.data import open_dataset
from cfanet.data.scene import DatasetError, Scene, check_scene_name
from pipelines.cache import StageCache, canonical_json, image_key, remove_stale_temporaries, write_text_atomic
from pipelines.catalog import PipelineSpec, all_pipelines, find_pipeline
from pipelines.compute import (OutOfMemoryStageError, StageWorker, WeightsFile, choose_device, first_line,
                               is_out_of_memory)  # noqa: F401 - is_out_of_memory: part of this module's API
from pipelines.config import BenchmarkConfig, Profile
from pipelines.executors import BatchError, LocalExecutor, StageBatch
from pipelines.graph import Stage, build_scene_graph
from pipelines.registry import method
from pipelines.store import ResultsStore
from pipelines.weights import ResolvedWeights, check_paper_inputs, resolve_weights

METRICS_VERSION = "1"


class StageError(RuntimeError):
    """A stage failed on one scene; the message (one line) names the scene, the method and the
    scene's input files, and says that the finished stages are kept."""


def open_profile_dataset(profile: Profile, scale: int):
    """The profile's dataset at `scale`."""
    data = profile.dataset
    if data.kind == "demo":
        return open_dataset("demo", scale, num_scenes=data.num_scenes, hr_size=data.hr_size, seed=data.seed,
                            split_file=data.split_file)
    extra = {"sice": {"label_dir": data.label_dir, "hr_long_side": data.hr_long_side}}.get(data.kind, {})
    return open_dataset(data.kind, scale, root=data.root, split_file=data.split_file, **extra)


def _code_identity(cls) -> str:
    """Hash of the source file implementing a method: editing the method invalidates its cache."""
    try:
        return hashlib.sha256(Path(inspect.getsourcefile(cls)).read_bytes()).hexdigest()[:16]
    except (TypeError, OSError):
        return "unknown"


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


@dataclass(frozen=True)
class ScannedScene:
    """A scene as checked before the run: its input keys, LR size and files."""

    scale: int
    name: str
    over_key: str
    under_key: str
    lr_size: tuple[int, int]
    files: dict


@dataclass
class PlannedScene:
    """A scene's stage graph and the stages this run needs from it."""

    scanned: ScannedScene
    graph: object
    stages: list[Stage]


class Runner:
    """Runs a profile's pipelines. `weights_trainer` overrides how demo weights are made (tests).

    `min_tile` is the smallest tile side (input pixels) the out-of-memory retry goes down to (it is
    also kept at least twice the model's tile overlap).
    """

    min_tile: int = 32

    def __init__(self, config: BenchmarkConfig, profile_name: str | None = None, *, weights_trainer=None,
                 show_progress: bool = True, log=print, executor: str | None = None):
        self.config = config
        self.profile = config.profile(profile_name)
        self.device = choose_device(self.profile.runtime.device)
        self.output_dir = Path(self.profile.output_dir)
        self.cache = StageCache(Path(self.profile.cache_dir) / "stages")
        self.weights_trainer = weights_trainer
        self.show_progress = show_progress
        self.log = log
        self.executor_name = executor or self.profile.runtime.executor
        self.ray_options: dict = {}  # extra RayExecutor arguments (tests: num_cpus)
        self._weights: dict[tuple[str, int], ResolvedWeights | None] = {}
        self._token = uuid.uuid4().hex  # names this run's models in the per-process pool
        self._worker: StageWorker | None = None

    # -- preparation ------------------------------------------------------------------------------

    def _specs(self, pipelines: list[str] | None) -> list[PipelineSpec]:
        return all_pipelines() if not pipelines else [find_pipeline(name) for name in pipelines]

    @staticmethod
    def _methods_of(specs: list[PipelineSpec]) -> list[str]:
        names = []
        for spec in specs:
            for name in (spec.sr, spec.mef, spec.joint):
                if name and name not in names:
                    names.append(name)
        return names

    def prepare_weights(self, methods: list[str]) -> dict[tuple[str, int], ResolvedWeights | None]:
        for scale in self.profile.scales:
            for name in methods:
                if (name, scale) not in self._weights:
                    self._weights[(name, scale)] = resolve_weights(
                        self.profile, name, scale, Path(self.profile.cache_dir), str(self.device),
                        trainer=self.weights_trainer)
        return self._weights

    def _identity(self, name: str, scale: int) -> dict:
        entry = method(name)
        weights = self._weights.get((name, scale))
        ident = {"config": {"scale": scale}, "weights_sha256": None}
        if weights is not None:
            ident = weights.identity()
        ident["config"] = {**ident["config"], "code": _code_identity(entry.load_class())}
        return ident

    def worker(self) -> StageWorker:
        """The picklable description of how this run computes stages (settings and weights)."""
        weights = {key: None if w is None else WeightsFile(str(w.path), w.sha256, w.size)
                   for key, w in self._weights.items()}
        if self._worker is None or self._worker.weights != weights:
            self._worker = StageWorker(self.profile.runtime, str(self.device), weights, min_tile=self.min_tile,
                                       token=self._token)
        return self._worker

    def _instance(self, name: str, scale: int):
        """The method's model in this process (built once, with the run's weights)."""
        return self.worker().instance(name, scale)

    @property
    def _instances(self) -> dict:
        """The models this process has built for the run so far, by (method, scale)."""
        return self.worker().instances()

    # -- execution --------------------------------------------------------------------------------

    def _compute(self, stage: Stage, scale: int, inputs: list[torch.Tensor]) -> tuple[torch.Tensor, list[int]]:
        """Run one stage in this process (out-of-memory retries with smaller tiles included).
        Returns the output and the tile sides it had to retry with."""
        try:
            return self.worker().compute(stage.method, scale, inputs, what=f"scene {stage.scene!r}", log=self.log)
        except OutOfMemoryStageError as exc:
            raise StageError(str(exc)) from exc

    def _batch_failure(self, error: BatchError, scanned: dict[tuple[int, str], ScannedScene],
                       summary: RunSummary) -> StageError:
        """A one-line StageError naming the scenes of the failed batch, their input files (from
        `scanned`, by (scale, scene name)) and the method."""
        batch, cause = error.batch, error.cause
        text = cause if isinstance(cause, str) else first_line(cause)
        if isinstance(cause, OutOfMemoryStageError):
            return StageError(f"{text}; the {summary.stages_computed} stage(s) this run finished are kept in the cache")
        where = []
        for stage in batch.stages:
            entry = scanned.get((batch.scale, stage.scene))
            files = entry.files if entry is not None else {}
            where.append(f"scene {stage.scene!r}" + (f" ({', '.join(str(v) for v in files.values())})" if files else ""))
        return StageError(f"{'; '.join(where)}: {batch.method} failed: {text}; the {summary.stages_computed} "
                          f"stage(s) this run finished and everything cached before are kept: fix the input and "
                          f"run again to resume")

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

    def _score(self, scene: Scene, final_key: str, output: torch.Tensor) -> dict[str, float]:
        """PSNR/SSIM per convention (with a ground truth) and MEF-SSIM, cached by content."""
        from cfanet.metrics.mef_ssim import mef_ms_ssim
        from cfanet.metrics.psnr_ssim import psnr, ssim

        conventions = [self.profile.metrics.convention] + [c for c in self.profile.metrics.also
                                                           if c != self.profile.metrics.convention]
        refs = [image_key(x) if x is not None else None for x in (scene.gt, scene.gt_over, scene.gt_under)]
        key = hashlib.sha256(canonical_json([final_key, refs, conventions, scene.scale, METRICS_VERSION])
                             .encode()).hexdigest()
        path = Path(self.profile.cache_dir) / "metrics" / key[:2] / f"{key}.json"
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except (OSError, ValueError):  # damaged (disk trouble): compute again
                pass
        values: dict[str, float] = {}
        if scene.gt is not None:
            for convention in conventions:
                values[f"psnr|{convention}"] = psnr(output, scene.gt, convention=convention, scale=scene.scale)
                values[f"ssim|{convention}"] = ssim(output, scene.gt, convention=convention, scale=scene.scale)
        if scene.gt_over is not None and scene.gt_under is not None:
            values["mef_ssim|official"] = mef_ms_ssim([scene.gt_over, scene.gt_under], output).score
        write_text_atomic(path, json.dumps(values))  # unique temporary file + rename
        return values

    def _output_path(self, *parts: str) -> Path:
        """`output_dir / parts...`, refusing any part that is not a plain file or folder name, so
        that no scene or method name can point outside the output folder."""
        for part in parts:
            if part in ("", ".", "..") or "/" in part or "\\" in part or "\x00" in part:
                raise DatasetError(f"{part!r}: not usable as a file name under the output folder {self.output_dir}")
        target = self.output_dir.joinpath(*parts)
        root = os.path.normpath(os.path.abspath(self.output_dir))
        if os.path.commonpath([root, os.path.normpath(os.path.abspath(target))]) != root:
            raise DatasetError(f"{target}: refusing to write outside the output folder {root}")
        return target

    def _publish_scene(self, scene: Scene, scale: int) -> None:
        """The scene's LR inputs and HR references as 8-bit PNGs under `images/x<scale>/_scene/`,
        for figures (written once; the folder name cannot clash with a method name)."""
        from cfanet.images import write_image

        check_scene_name(scene.name, "scene")
        for role in ("over", "under", "gt", "gt_over", "gt_under"):
            image = getattr(scene, role)
            target = self._output_path("images", f"x{scale}", "_scene", role, f"{scene.name}.png")
            if image is not None and not target.exists():
                write_image(target, image)  # atomic

    def _publish(self, cache_key: str, target: Path) -> None:
        """Put a final image under the output folder (a hard link to the cache entry when possible),
        atomically: linked or copied to a unique temporary name, then renamed over the target, so a
        kill or a concurrent run never leaves a missing or partial image."""
        source = self.cache.root / cache_key[:2] / f"{cache_key}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if os.path.samefile(source, target):
                return
        except OSError:
            pass
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            try:
                os.link(source, tmp)
            except OSError:
                shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def manifest(self) -> dict:
        packages = {}
        for dist in ("cfanet-bench", "torch", "numpy", "scipy", "opencv-python-headless", "scikit-image"):
            try:
                packages[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                packages[dist] = None
        try:
            commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                                    cwd=Path(__file__).resolve().parent).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            commit = None
        profile_text = canonical_json(self.profile.__dict__)
        return {
            "profile": self.profile.name, "config_source": self.config.source,
            "config_sha256": hashlib.sha256(profile_text.encode()).hexdigest(),
            "python": sys.version.split()[0], "platform": platform.platform(), "packages": packages,
            "git_commit": commit, "device": str(self.device),
            "device_name": torch.cuda.get_device_name(0) if self.device.type == "cuda" else platform.processor(),
            "weights": {f"{name}.x{scale}": (None if w is None else {"path": str(w.path), "sha256": w.sha256,
                                                                      "source": w.source, "size": w.size,
                                                                      "details": w.details})
                        for (name, scale), w in self._weights.items()},
            "demo_weights": sorted({name for (name, _), w in self._weights.items() if w and w.source == "demo"}),
            "parameters": {f"{name}.x{scale}": int(getattr(instance, "num_parameters", 0) or 0)
                           for (name, scale), instance in self._instances.items()},
        }

    def load_models(self, methods: list[str]) -> None:
        """Build every method with its weights now, so that a wrong or hostile weights file fails
        before any stage runs (naming the file)."""
        for scale in self.profile.scales:
            for name in methods:
                self._instance(name, scale)

    def _scan_scenes(self, datasets: dict, summary: RunSummary) -> list[ScannedScene]:
        """Load every scene once before any work: unreadable, corrupt or mismatched files fail here,
        naming the file, before weights are trained or a stage runs. Images are not kept (a scene
        is loaded again when its turn comes)."""
        scanned, shown = [], 5
        for scale, dataset in datasets.items():
            for name in tqdm(dataset.names(), desc=f"checking scenes x{scale}", disable=not self.show_progress,
                             leave=False):
                scene = dataset.load(name)
                scanned.append(ScannedScene(scale, name, image_key(scene.over), image_key(scene.under),
                                            tuple(scene.over.shape[-2:]), dict(scene.info.get("files") or {})))
                before, after = scene.info.get("modcropped_from"), scene.info.get("hr_size")
                if before is not None and after is not None and tuple(before) != tuple(after):
                    summary.modcropped[f"x{scale}/{name}"] = (tuple(before), tuple(after))
                    if len(summary.modcropped) <= shown:
                        self.log(f"note: scene {name!r}: HR {before[0]}x{before[1]} cropped to {after[0]}x{after[1]} "
                                 f"(a multiple of the scale {scale}, as CF-Net's data preparation does)")
        if len(summary.modcropped) > shown:
            self.log(f"note: ... {len(summary.modcropped) - shown} more scene(s) cropped to a multiple of the scale "
                     f"(all listed in the run manifest under 'modcropped')")
        return scanned

    def _load_scene(self, datasets: dict, scanned: "ScannedScene") -> Scene:
        """A scene, checked to be the one scanned before the run started."""
        scene = datasets[scanned.scale].load(scanned.name)
        if (image_key(scene.over), image_key(scene.under)) != (scanned.over_key, scanned.under_key):
            files = ", ".join(str(v) for v in scanned.files.values())
            raise DatasetError(f"scene {scanned.name!r}: input files changed while the run was going "
                               f"({files or 'generated scene'}); run again")
        return scene

    def _plan(self, specs: list[PipelineSpec], scanned: list[ScannedScene]) -> list[PlannedScene]:
        """Every scene's stage graph and the stages the pipelines need from it; a stage shared with
        an earlier scene (identical inputs) is planned once. Weights must be prepared."""
        methods = self._methods_of(specs)
        identities = {(n, s): self._identity(n, s) for n in methods for s in self.profile.scales}
        plan, seen = [], set()
        for entry in scanned:
            graph = build_scene_graph(entry.name, entry.over_key, entry.under_key, specs,
                                      {n: identities[(n, entry.scale)] for n in methods}, self._code_version())
            stages = []
            for stage in graph.stages_of([spec.name for spec in specs]):
                if stage.key not in seen:
                    seen.add(stage.key)
                    stages.append(stage)
            plan.append(PlannedScene(entry, graph, stages))
        return plan

    def _batches(self, plan: list[PlannedScene], todo: set[str]) -> list[list[StageBatch]]:
        """The stages in `todo` as batches, level by level: level 0 reads the scenes' images, level 1
        reads level-0 outputs. A batch holds up to `runtime.batch_size` stages of one method and scale
        on scenes whose inputs have equal sizes, in scene order."""
        size = self.profile.runtime.batch_size
        levels: list[dict[tuple, list[Stage]]] = [{}, {}]
        for planned in plan:
            raw = {planned.scanned.over_key, planned.scanned.under_key}
            for stage in planned.stages:
                if stage.key not in todo:
                    continue
                level = 0 if set(stage.inputs) <= raw else 1
                group = (planned.scanned.scale, stage.method, stage.kind, planned.scanned.lr_size,
                         tuple(k in raw for k in stage.inputs))
                levels[level].setdefault(group, []).append(stage)
        return [[StageBatch(method_name, kind, scale, tuple(stages[i:i + size]))
                 for (scale, method_name, kind, *_), stages in groups.items() for i in range(0, len(stages), size)]
                for groups in levels]

    def run(self, pipelines: list[str] | None = None, force: bool = False) -> RunSummary:
        """Run the named pipelines (default: all 34) on every scene and scale of the profile."""
        wall_start = time.perf_counter()
        specs = self._specs(pipelines)
        methods = self._methods_of(specs)
        check_paper_inputs(self.profile, methods)
        datasets = {scale: open_profile_dataset(self.profile, scale) for scale in self.profile.scales}
        for dataset in datasets.values():
            dataset.names()  # fail early on a malformed dataset folder or an unusable scene name
        database = self.output_dir / "results.sqlite"
        summary = RunSummary("", self.output_dir, database)
        scanned = self._scan_scenes(datasets, summary)
        cache_dir = Path(self.profile.cache_dir)
        removed = sum(remove_stale_temporaries(folder) for folder in (
            self.cache.root, cache_dir / "metrics", cache_dir / "demo_weights", self.output_dir / "images"))
        if removed:
            self.log(f"removed {removed} temporary file(s) left by killed runs (older than an hour)")
        self.log(f"preparing weights for {len(methods)} methods ({self.profile.name} profile)")
        self.prepare_weights(methods)
        self.load_models(methods)
        plan = self._plan(specs, scanned)
        with ResultsStore(database) as store:
            run_id = store.start_run(self.profile.name, self.manifest())
            summary.run_id = run_id
            summary.stages_total = sum(len(p.stages) for p in plan)
            forced = {stage.key for p in plan for stage in p.stages} if force else set()
            rows: list[tuple] = []
            status, error, executor = "failed", None, None
            try:
                todo = set()
                for planned in plan:
                    for stage in planned.stages:
                        if stage.key in forced or not self.cache.has(stage.key):
                            todo.add(stage.key)
                        else:
                            store.record_timing(run_id, stage.key, stage.method, stage.scene, 0.0, cached=True)
                with tqdm(total=summary.stages_total, initial=summary.stages_total - len(todo), desc="stages",
                          unit="stage", disable=not self.show_progress) as bar:
                    if todo:
                        executor = self._executor(self.executor_name)
                        self._execute(executor, self._batches(plan, todo), plan, datasets, forced, store, run_id,
                                      summary, bar)
                rows = self._score_and_publish(plan, datasets, specs)
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
                                memory_retries=[list(r) for r in summary.memory_retries])
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
                scene = self._load_scene(datasets, scanned[where])
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
                        store.record_timing(run_id, stage.key, stage.method, stage.scene, 0.0, cached=True)
                    share = result.seconds / max(len(result.computed), 1)
                    for stage, output in zip(result.computed, result.outputs):
                        metadata = {"method": stage.method, "kind": stage.kind, "scene": stage.scene,
                                    "inputs": list(stage.inputs), "seconds": share, "run_id": run_id}
                        if result.retried:
                            metadata["tile_after_out_of_memory"] = result.retried[-1]
                            summary.memory_retries.append((stage.method, stage.scene, list(result.retried)))
                        self.cache.put(stage.key, output, metadata)
                        store.record_timing(run_id, stage.key, stage.method, stage.scene, share, cached=False)
                        summary.stages_computed += 1
                    summary.compute_seconds += result.seconds
                    bar.update(len(result.computed) + len(result.found_cached))
                    bar.set_postfix_str(f"x{result.batch.scale} {result.batch.method}")
            except BatchError as exc:
                raise self._batch_failure(exc, scanned, summary) from exc

    def _score_and_publish(self, plan: list[PlannedScene], datasets: dict, specs: list[PipelineSpec]) -> list[tuple]:
        """Score every pipeline's final image on every scene (metric cache included) and publish
        the images; returns the result rows."""
        rows: list[tuple] = []
        for planned in tqdm(plan, desc="scoring", unit="scene", disable=not self.show_progress, leave=False):
            entry = planned.scanned
            scene = self._load_scene(datasets, entry)
            self._publish_scene(scene, entry.scale)
            for spec in specs:
                final = planned.graph.finals[spec.name]
                output = self.cache.get(final)
                if output is None:
                    raise RuntimeError(f"scene {entry.name!r}: the final image of {spec.name} is missing from the "
                                       f"cache (removed while the run was going?); run again")
                values = self._score(scene, final, output)
                rows += [(f"x{entry.scale}/{entry.name}", spec.name, metric.split("|")[0], metric.split("|")[1], value)
                         for metric, value in values.items()]
                self._publish(final, self._output_path("images", f"x{entry.scale}", spec.name, f"{entry.name}.png"))
        return rows

    @staticmethod
    def _code_version() -> str:
        from cfanet import __version__

        return __version__
