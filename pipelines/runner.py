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
  retries, and a file lock per stage makes a second process wait for the first one's entry instead
  of computing the same stage again.
- **Bad inputs** fail before any work where they can be seen up front: every scene is loaded and
  checked (files readable, sizes, names usable as file names) and every model is loaded with its
  weights before the first stage. A failure that only shows when a stage runs (an image smaller
  than a model's window) is a `StageError` naming the scene, the method and the input files;
  everything computed before it stays in the cache, so a rerun after fixing the input resumes.
- **GPU out of memory** during a stage: the model's tile size is halved (from its automatic tile,
  or the whole image) and the stage retried, down to a minimum tile; only then does the run fail.
"""

from __future__ import annotations

import gc
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
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from cfanet.data import open_dataset
from cfanet.data.scene import DatasetError, Scene, check_scene_name
from pipelines.cache import StageCache, canonical_json, image_key, remove_stale_temporaries, write_text_atomic
from pipelines.catalog import PipelineSpec, all_pipelines, find_pipeline
from pipelines.config import BenchmarkConfig, Profile
from pipelines.graph import Stage, build_scene_graph
from pipelines.registry import METHODS, method
from pipelines.store import ResultsStore
from pipelines.weights import ResolvedWeights, check_paper_inputs, resolve_weights

METRICS_VERSION = "1"


class StageError(RuntimeError):
    """A stage failed on one scene; the message (one line) names the scene, the method and the
    scene's input files, and says that the finished stages are kept."""


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a device (or host) allocation failure: `torch.cuda.OutOfMemoryError`, or a
    RuntimeError whose message says the memory ran out."""
    for name in ("OutOfMemoryError",):
        for where in (torch, torch.cuda):
            cls = getattr(where, name, None)
            if isinstance(cls, type) and isinstance(exc, cls):
                return True
    if not isinstance(exc, RuntimeError):
        return False
    message = str(exc).lower()
    return "out of memory" in message or "not enough memory" in message or "can't allocate memory" in message


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def choose_device(setting: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU; an explicit `cuda` without a GPU is an error."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device = 'cuda' but no CUDA device is available")
    return torch.device(setting)


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


class Runner:
    """Runs a profile's pipelines. `weights_trainer` overrides how demo weights are made (tests).

    `min_tile` is the smallest tile side (input pixels) the out-of-memory retry goes down to (it is
    also kept at least twice the model's tile overlap).
    """

    min_tile: int = 32

    def __init__(self, config: BenchmarkConfig, profile_name: str | None = None, *, weights_trainer=None,
                 show_progress: bool = True, log=print):
        self.config = config
        self.profile = config.profile(profile_name)
        self.device = choose_device(self.profile.runtime.device)
        self.output_dir = Path(self.profile.output_dir)
        self.cache = StageCache(Path(self.profile.cache_dir) / "stages")
        self.weights_trainer = weights_trainer
        self.show_progress = show_progress
        self.log = log
        self._instances: dict[tuple[str, int], object] = {}
        self._weights: dict[tuple[str, int], ResolvedWeights | None] = {}

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

    def _instance(self, name: str, scale: int):
        if (name, scale) not in self._instances:
            entry = method(name)
            cls = entry.load_class()
            weights = self._weights.get((name, scale))
            runtime = self.profile.runtime
            if weights is None:
                instance = cls()
            elif entry.kind == "sr":
                # bf16 autocast only on CUDA, when the profile asks for AMP and the model supports it
                bf16 = runtime.amp and self.device.type == "cuda" and cls.supports_bf16
                instance = cls.from_checkpoint(weights.path, scale=scale, size=weights.size, device=self.device,
                                               tile=runtime.tile_size, tile_overlap=runtime.tile_overlap or None,
                                               precision="bf16" if bf16 else "fp32")
            elif entry.kind == "joint":
                instance = cls.from_checkpoint(weights.path, scale=scale, device=self.device)
            else:
                instance = cls.from_checkpoint(weights.path, device=self.device)
            self._instances[(name, scale)] = instance
        return self._instances[(name, scale)]

    # -- execution --------------------------------------------------------------------------------

    @staticmethod
    def _call(instance, kind: str, inputs: list[torch.Tensor]) -> torch.Tensor:
        if kind == "sr":
            return instance.upscale(inputs[0])
        if kind == "mef":
            return instance.fuse(inputs[0], inputs[1])
        return instance.fuse_upscale(inputs[0], inputs[1])

    @staticmethod
    def _current_tile(instance, image: torch.Tensor) -> int | None:
        """The tile side (input pixels) the instance works with on `image` now: its configured or
        automatic tile, else the whole image; None when it cannot tile (no `tile` setting, or
        tiling switched off with a negative tile)."""
        tile = getattr(instance, "tile", None)
        if not isinstance(tile, int) or isinstance(tile, bool) or tile < 0:
            return None
        whole = max(image.shape[-2:])
        if tile == 0:
            size = getattr(instance, "_tile_size", None)
            tile = size(image) if callable(size) else 0
        return min(tile, whole) if tile > 0 else whole

    def _smaller_tile(self, instance, current: int) -> int | None:
        """Half of `current`, not below the minimum (`min_tile`, and twice the tile overlap so
        that tiles still advance by at least the overlap); None when `current` is the minimum."""
        overlap = getattr(instance, "tile_overlap", 0)
        floor = max(self.min_tile, 2 * overlap if isinstance(overlap, int) else 0)
        smaller = current // 2
        if smaller >= floor:
            return smaller
        return floor if current > floor else None

    def _free_device_memory(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _compute(self, stage: Stage, scale: int, inputs: list[torch.Tensor]) -> tuple[torch.Tensor, list[int]]:
        """Run one stage; on out-of-memory, retry with the model's tile halved. Returns the output
        and the tile sides it had to retry with (empty when the first try succeeded)."""
        instance = self._instance(stage.method, scale)
        inputs = [x.to(self.device) for x in inputs]
        retried: list[int] = []
        while True:
            problem = None
            try:
                return self._call(instance, stage.kind, inputs), retried
            except Exception as exc:  # noqa: BLE001 - only memory errors are retried, others re-raised
                if not is_out_of_memory(exc):
                    raise
                problem = _first_line(exc)
            # Out of the except block: the exception and the frames holding its tensors are gone.
            self._free_device_memory()
            current = self._current_tile(instance, inputs[0])
            smaller = None if current is None else self._smaller_tile(instance, current)
            if smaller is None:
                how = ("it cannot be tiled" if current is None else
                       f"even with {current}-pixel tiles (the smallest this retry goes to)")
                raise StageError(f"out of memory on {self.device} running {stage.method} on scene {stage.scene!r}: "
                                 f"{how}; free memory on the device, lower runtime.tile_size or use "
                                 f"runtime.device = 'cpu' ({problem})")
            self.log(f"out of memory: {stage.method} on scene {stage.scene!r} with {current}-pixel tiles; "
                     f"retrying with {smaller}-pixel tiles")
            instance.tile = smaller  # later stages of this method keep the smaller tile
            retried.append(smaller)

    def _stage_failure(self, stage: Stage, scene: Scene | None, exc: BaseException, summary: RunSummary) -> StageError:
        files = (scene.info.get("files") or {}) if scene is not None else {}
        where = f"scene {stage.scene!r}" + (f" ({', '.join(str(v) for v in files.values())})" if files else "")
        return StageError(f"{where}: {stage.method} failed: {_first_line(exc)}; the {summary.stages_computed} "
                          f"stage(s) this run finished and everything cached before are kept: fix the input and "
                          f"run again to resume")

    def _run_stage(self, stage: Stage, scale: int, images: dict[str, torch.Tensor], force: bool,
                   store: ResultsStore, run_id: str, summary: RunSummary, scene: Scene | None = None) -> torch.Tensor:
        cached = None if force else self.cache.get(stage.key)
        if cached is not None:
            store.record_timing(run_id, stage.key, stage.method, stage.scene, 0.0, cached=True)
            return cached
        # One process computes a stage at a time: a concurrent run on the same cache waits here and
        # then finds the entry the other one wrote.
        with self.cache.lock(stage.key):
            cached = None if force else self.cache.get(stage.key)
            if cached is not None:
                store.record_timing(run_id, stage.key, stage.method, stage.scene, 0.0, cached=True)
                return cached
            inputs = [images[key] if key in images else self.cache.get(key) for key in stage.inputs]
            if any(x is None for x in inputs):
                raise RuntimeError(f"stage {stage.method} on {stage.scene}: an input is missing from the cache")
            start = time.perf_counter()
            try:
                with torch.no_grad():
                    output, retried = self._compute(stage, scale, inputs)
                    output = output.detach().to("cpu", torch.float32)
            except StageError as exc:
                raise StageError(f"{exc}; the {summary.stages_computed} stage(s) this run finished are kept in "
                                 f"the cache") from exc
            except (ValueError, RuntimeError, IndexError) as exc:
                raise self._stage_failure(stage, scene, exc, summary) from exc
            seconds = time.perf_counter() - start
            metadata = {"method": stage.method, "kind": stage.kind, "scene": stage.scene,
                        "inputs": list(stage.inputs), "seconds": seconds, "run_id": run_id}
            if retried:
                metadata["tile_after_out_of_memory"] = retried[-1]
                summary.memory_retries.append((stage.method, stage.scene, list(retried)))
            stored = self.cache.put(stage.key, output, metadata)
        store.record_timing(run_id, stage.key, stage.method, stage.scene, seconds, cached=False)
        summary.stages_computed += 1
        summary.compute_seconds += seconds
        return stored

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

    def _scan_scenes(self, datasets: dict, summary: RunSummary) -> list[tuple[int, str, str, str]]:
        """Load every scene once before any work: unreadable, corrupt or mismatched files fail here,
        naming the file, before weights are trained or a stage runs. Returns (scale, name, over key,
        under key) per scene; images are not kept (a scene is loaded again when its turn comes)."""
        scanned, shown = [], 5
        for scale, dataset in datasets.items():
            for name in tqdm(dataset.names(), desc=f"checking scenes x{scale}", disable=not self.show_progress,
                             leave=False):
                scene = dataset.load(name)
                scanned.append((scale, name, image_key(scene.over), image_key(scene.under)))
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
        identities = {(n, s): self._identity(n, s) for n in methods for s in self.profile.scales}
        plan = []
        for scale, name, over_key, under_key in scanned:
            graph = build_scene_graph(name, over_key, under_key, specs, {n: identities[(n, scale)] for n in methods},
                                      self._code_version())
            plan.append((scale, name, over_key, under_key, graph, graph.stages_of([s.name for s in specs])))
        with ResultsStore(database) as store:
            run_id = store.start_run(self.profile.name, self.manifest())
            summary.run_id = run_id
            summary.stages_total = sum(len(stages) for *_, stages in plan)
            forced = {stage.key for *_, stages in plan for stage in stages} if force else set()
            rows: list[tuple] = []
            status, error = "failed", None
            try:
                with tqdm(total=summary.stages_total, desc="stages", unit="stage",
                          disable=not self.show_progress) as bar:
                    for scale, name, over_key, under_key, graph, stages in plan:
                        scene = datasets[scale].load(name)
                        if (image_key(scene.over), image_key(scene.under)) != (over_key, under_key):
                            files = ", ".join(str(v) for v in (scene.info.get("files") or {}).values())
                            raise DatasetError(f"scene {name!r}: input files changed while the run was going "
                                               f"({files or 'generated scene'}); run again")
                        images = {over_key: scene.over, under_key: scene.under}
                        outputs = {}
                        for stage in stages:
                            bar.set_postfix_str(f"x{scale} {name} {stage.method}")
                            outputs[stage.key] = self._run_stage(stage, scale, images, stage.key in forced, store,
                                                                 run_id, summary, scene)
                            forced.discard(stage.key)
                            bar.update()
                        self._publish_scene(scene, scale)
                        for spec in specs:
                            final = graph.finals[spec.name]
                            values = self._score(scene, final, outputs[final])
                            rows += [(f"x{scale}/{name}", spec.name, metric.split("|")[0], metric.split("|")[1], value)
                                     for metric, value in values.items()]
                            self._publish(final, self._output_path("images", f"x{scale}", spec.name, f"{name}.png"))
                status = "finished"
            except KeyboardInterrupt:
                status, error = "interrupted", "interrupted"
                raise
            except BaseException as exc:
                error = _first_line(exc)
                raise
            finally:
                summary.results = rows
                summary.wall_seconds = time.perf_counter() - wall_start
                manifest = self.manifest()
                manifest.update(stages_total=summary.stages_total, stages_computed=summary.stages_computed,
                                compute_seconds=summary.compute_seconds, wall_seconds=summary.wall_seconds,
                                pipelines=[s.name for s in specs],
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

    @staticmethod
    def _code_version() -> str:
        from cfanet import __version__

        return __version__
