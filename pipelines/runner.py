"""Run pipelines: prepare weights, walk the stage graph of every scene through the stage cache,
score the final images and store everything in the results database.

A run is resumable by construction: every stage output lands in the content-addressed cache
atomically as soon as it is computed, so a run that is killed and started again recomputes only
what had not finished, and ends with the same results.
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
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from cfanet.data import open_dataset
from cfanet.data.scene import Scene
from pipelines.cache import StageCache, canonical_json, image_key
from pipelines.catalog import PipelineSpec, all_pipelines, find_pipeline
from pipelines.config import BenchmarkConfig, Profile
from pipelines.graph import SceneGraph, Stage, build_scene_graph
from pipelines.registry import METHODS, method
from pipelines.store import ResultsStore
from pipelines.weights import ResolvedWeights, check_paper_inputs, resolve_weights

METRICS_VERSION = "1"


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


class Runner:
    """Runs a profile's pipelines. `weights_trainer` overrides how demo weights are made (tests)."""

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

    def _compute(self, stage: Stage, scale: int, inputs: list[torch.Tensor]) -> torch.Tensor:
        instance = self._instance(stage.method, scale)
        inputs = [x.to(self.device) for x in inputs]
        if stage.kind == "sr":
            return instance.upscale(inputs[0])
        if stage.kind == "mef":
            return instance.fuse(inputs[0], inputs[1])
        return instance.fuse_upscale(inputs[0], inputs[1])

    def _run_stage(self, stage: Stage, scale: int, images: dict[str, torch.Tensor], force: bool,
                   store: ResultsStore, run_id: str, summary: RunSummary) -> torch.Tensor:
        cached = None if force else self.cache.get(stage.key)
        if cached is not None:
            store.record_timing(run_id, stage.key, stage.method, stage.scene, 0.0, cached=True)
            return cached
        inputs = [images[key] if key in images else self.cache.get(key) for key in stage.inputs]
        if any(x is None for x in inputs):
            raise RuntimeError(f"stage {stage.method} on {stage.scene}: an input is missing from the cache")
        start = time.perf_counter()
        with torch.no_grad():
            output = self._compute(stage, scale, inputs).detach().to("cpu", torch.float32)
        seconds = time.perf_counter() - start
        stored = self.cache.put(stage.key, output, {"method": stage.method, "kind": stage.kind, "scene": stage.scene,
                                                    "inputs": list(stage.inputs), "seconds": seconds})
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
            return json.loads(path.read_text())
        values: dict[str, float] = {}
        if scene.gt is not None:
            for convention in conventions:
                values[f"psnr|{convention}"] = psnr(output, scene.gt, convention=convention, scale=scene.scale)
                values[f"ssim|{convention}"] = ssim(output, scene.gt, convention=convention, scale=scene.scale)
        if scene.gt_over is not None and scene.gt_under is not None:
            values["mef_ssim|official"] = mef_ms_ssim([scene.gt_over, scene.gt_under], output).score
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_text(json.dumps(values))
        os.replace(tmp, path)
        return values

    def _publish_scene(self, scene: Scene, scale: int) -> None:
        """The scene's LR inputs and HR references as 8-bit PNGs under `images/x<scale>/_scene/`,
        for figures (written once; the folder name cannot clash with a method name)."""
        from cfanet.images import write_image

        for role in ("over", "under", "gt", "gt_over", "gt_under"):
            image = getattr(scene, role)
            target = self.output_dir / "images" / f"x{scale}" / "_scene" / role / f"{scene.name}.png"
            if image is not None and not target.exists():
                write_image(target, image)

    def _publish(self, cache_key: str, target: Path) -> None:
        """Put a final image under the output folder (a hard link to the cache entry when possible)."""
        source = self.cache.root / cache_key[:2] / f"{cache_key}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            if target.stat().st_ino == source.stat().st_ino:
                return
            target.unlink()
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)

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

    def run(self, pipelines: list[str] | None = None, force: bool = False) -> RunSummary:
        """Run the named pipelines (default: all 34) on every scene and scale of the profile."""
        wall_start = time.perf_counter()
        specs = self._specs(pipelines)
        methods = self._methods_of(specs)
        check_paper_inputs(self.profile, methods)
        datasets = {scale: open_profile_dataset(self.profile, scale) for scale in self.profile.scales}
        for dataset in datasets.values():
            dataset.names()  # fail early on a malformed dataset folder
        self.log(f"preparing weights for {len(methods)} methods ({self.profile.name} profile)")
        self.prepare_weights(methods)
        database = self.output_dir / "results.sqlite"
        with ResultsStore(database) as store:
            run_id = store.start_run(self.profile.name, self.manifest())
            summary = RunSummary(run_id, self.output_dir, database)
            identities = {(n, s): self._identity(n, s) for n in methods for s in self.profile.scales}
            work: list[tuple[int, Scene, SceneGraph, list[Stage]]] = []
            for scale, dataset in datasets.items():
                for scene in tqdm(dataset, desc=f"loading scenes x{scale}", disable=not self.show_progress,
                                  leave=False):
                    graph = build_scene_graph(scene.name, image_key(scene.over), image_key(scene.under), specs,
                                              {n: identities[(n, scale)] for n in methods}, self._code_version())
                    work.append((scale, scene, graph, graph.stages_of([s.name for s in specs])))
            summary.stages_total = sum(len(stages) for *_, stages in work)
            forced = {stage.key for *_, stages in work for stage in stages} if force else set()
            bar = tqdm(total=summary.stages_total, desc="stages", unit="stage", disable=not self.show_progress)
            rows = []
            for scale, scene, graph, stages in work:
                images = {image_key(scene.over): scene.over, image_key(scene.under): scene.under}
                outputs = {}
                for stage in stages:
                    bar.set_postfix_str(f"x{scale} {scene.name} {stage.method}")
                    outputs[stage.key] = self._run_stage(stage, scale, images, stage.key in forced, store, run_id,
                                                         summary)
                    forced.discard(stage.key)
                    bar.update()
                self._publish_scene(scene, scale)
                for spec in specs:
                    final = graph.finals[spec.name]
                    values = self._score(scene, final, outputs[final])
                    rows += [(f"x{scale}/{scene.name}", spec.name, metric.split("|")[0], metric.split("|")[1], value)
                             for metric, value in values.items()]
                    self._publish(final, self.output_dir / "images" / f"x{scale}" / spec.name / f"{scene.name}.png")
            bar.close()
            store.record_results(run_id, rows)
            summary.results = rows
            summary.wall_seconds = time.perf_counter() - wall_start
            manifest = self.manifest()
            manifest.update(stages_total=summary.stages_total, stages_computed=summary.stages_computed,
                            compute_seconds=summary.compute_seconds, wall_seconds=summary.wall_seconds,
                            pipelines=[s.name for s in specs])
            store.finish_run(run_id, manifest)
        return summary

    @staticmethod
    def _code_version() -> str:
        from cfanet import __version__

        return __version__
