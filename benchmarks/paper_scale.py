"""The paper-size run, measured: the `paper` profile's official configurations of every deep method
(seeded random weights written in each method's released checkpoint container, so the real loading
path runs) on synthetic scenes of SICE's size, through the real engine (`pipelines.runner.Runner`);
per stage kind throughput, share of wall time and peak memory, and the projected time of the full
SICE run on one device and on K devices through Ray.

    python benchmarks/paper_scale.py [--scenes 4] [--long-side 1500] [--device cpu|cuda]
        [--methods PIPELINE ...] [--k 1 2 4 8] [--json OUT] [--profile paper] [--warmup 1]
        [--frames 3] [--source-long-side L] [--seed 0] [--keep] [--verbose]

What runs. In a temporary folder: `--scenes` scenes in SICE's two-part layout (`Part1/<k>/1.jpg ...`,
`Part1/Label/<k>.jpg`; `benchmarks/synthetic_sice.py`: the demo's camera model on crops of the demo
photographs, `--frames` exposures each, written at `--source-long-side` (default: the HR size itself)
with SICE's 844:1500 aspect ratio), named after the default test split's scenes and listed in a
split file; random official-size weights in the released containers (`benchmarks/release_weights.py`:
RCAN's plain `.pt`, SwinIR's `params`, SRFBN's and MEF-Net's training checkpoints, DBPN's
DataParallel dict, CF-Net's `{"model": ...}`, U2Fusion's TensorFlow checkpoint, CFANet as our
trainer writes it); and a `benchmark.toml` whose profile is the chosen profile of the repository's
`benchmark.toml` with that data (`dataset.kind = "sice"`, `hr_long_side = --long-side`, the split
file), those weights, `runtime.device = --device` and output and cache in the folder; every other
key (scales, metrics, amp, batch size, tiling, grid) as the profile has it. The real `Runner`
then runs the profile's grid (or `--methods`, pipeline names as `cfanet-bench run` takes them) once,
from an empty cache. With `--warmup W` (default 1) a separate run on W other scenes of the same
size goes first in the same process, so that one-time costs that a 589-scene run pays once (CUDA
context, cuDNN/oneDNN kernel selection for each shape) stay out of the figures.

What is measured.
    stage compute  per stage, from the results database's `stage_timings` table (the executor's
                   time around each batch: reading its inputs and the model call; stage outputs
                   come back to the CPU, so CUDA work is finished inside it). Kinds: SR, MEF (split
                   into classical and deep), joint.
    metrics        the scoring phase: every metric of the profile on every final image, with the
                   metric cache, scene loads and publishing the images. From the runner's own
                   record where it keeps one (`RunSummary.scoring_wall_seconds`, and
                   `score_seconds` / `metric_seconds` for the metric computations, when it scores in
                   its executors); else (a runner that scores in the driver and records nothing)
                   the benchmark times `Runner._score_and_publish`; else the run's wall time minus
                   stage compute and setup. The output says which.
    setup          weights hashing and model loading (`prepare_weights`, `load_models`).
    driver other   the rest of the run's wall time: scanning and loading scenes, planning, writing
                   stage outputs to the cache (PNG encoding), the database.
    images/s       stages (metrics: scored final images) per second of that kind's time.
    peak memory    CPU: the process's resident set, sampled every 10 ms (psutil when installed,
                   else /proc/self/statm), highest while that kind's stages ran (every model of
                   the run is loaded by then, so it includes their weights); CUDA:
                   `torch.cuda.max_memory_allocated` over the same intervals.

Projection (printed with the figures). Per-scene times are the measured ones divided by the
scenes, scaled by the HR pixel ratio (844x1500 over the measured HR size: linear in pixels, which
overestimates when measured on small images, where fixed per-stage costs and an idle GPU weigh
more); setup is paid once. With P the per-scene time spent in the executors (stage compute, plus
the metric computations when the runner scores in its executors) and D the rest (the remainder of
scoring, driver other):
    T_1(S) = setup + S * (P + D)
    T_K(S) = setup + S * (P / K + D)
Under `executor = "ray"` batches fan out over K devices while the driver alone stores outputs,
publishes (and, in a runner that scores in the driver, scores) serially: Amdahl, no overlap of
driver work with computation assumed; Ray's own costs (shipping images through the object store,
loading the models on every worker) are not in the measurement. When the runner scores in the
driver, a second line gives T_K as if all of scoring ran in the executors. S = 589 (SICE, both
parts, as the paper scored) and the default test split's size (`cfanet.data.splits`).

Goal (issue 17): on one H100/H200, all 34 methods on 100 SICE-size scenes in <= 10 min, with
metrics + classical fusion <= 15% of the wall time. The script says whether this run's projection
for 100 scenes meets it, on the device it ran on.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import re
import sqlite3
import sys
import tempfile
import threading
import time
import tomllib
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GOAL_SCENES, GOAL_SECONDS, GOAL_SHARE = 100, 600.0, 0.15
GOAL_DEVICES = ("H100", "H200")
KINDS = ("sr", "mef", "joint", "metrics")
SAMPLE_SECONDS = 0.01


# -- configuration ------------------------------------------------------------------------------------

def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        return json.dumps(str(value))  # JSON's escapes are TOML basic-string escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def toml_text(table: dict, prefix: tuple[str, ...] = ()) -> str:
    """`table` (nested dicts of strings, numbers, booleans and lists) as TOML text."""
    scalars = [(k, v) for k, v in table.items() if not isinstance(v, dict)]
    tables = [(k, v) for k, v in table.items() if isinstance(v, dict)]
    lines = [f"[{'.'.join(_toml_key(p) for p in prefix)}]"] if prefix and (scalars or not tables) else []
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars]
    text = "\n".join(lines) + ("\n" if lines else "")
    for key, sub in tables:
        text += ("\n" if text else "") + toml_text(sub, prefix + (key,))
    return text


def derived_profile(source: dict, name: str, root: Path, data_root: Path, split_file: Path, long_side: int,
                    device: str, weights: dict[str, str]) -> dict:
    """The profile `name` of the parsed `benchmark.toml` `source`, pointed at the synthetic SICE folder,
    the weights written for the run, `device`, and output and cache folders under `root`."""
    profiles = source.get("profiles", {})
    if name not in profiles:
        raise SystemExit(f"error: no profile {name!r} in the configuration (has: {', '.join(profiles)})")
    table = copy.deepcopy(profiles[name])
    table["output_dir"] = str(root / "results")
    table["cache_dir"] = str(root / "cache")
    data = {k: v for k, v in table.get("dataset", {}).items() if k not in ("split", "split_file", "parts", "label_dir")}
    data.update(kind="sice", root=str(data_root), hr_long_side=long_side, split_file=str(split_file))
    table["dataset"] = data
    table.setdefault("runtime", {})["device"] = device
    table["weights"] = dict(weights)
    return table


# -- measurement ----------------------------------------------------------------------------------------

def _rss_reader():
    """A function giving this process's resident set in bytes (psutil, else /proc), or None."""
    try:
        import psutil

        process = psutil.Process()
        return lambda: process.memory_info().rss
    except ImportError:
        pass
    statm = Path("/proc/self/statm")
    if statm.is_file():
        page = os.sysconf("SC_PAGE_SIZE")
        return lambda: int(statm.read_text().split()[1]) * page
    return None


class MemoryMeter:
    """Peak CPU RSS (sampled in a thread) and CUDA `max_memory_allocated` per labelled interval:
    `begin()`, then `end(label)`; a label's peak is the highest over its intervals (bytes)."""

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.read = _rss_reader()
        self.rss: dict[str, int] = {}
        self.gpu: dict[str, int] = {}
        self.overall = 0
        self._interval = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True) if self.read else None

    def _sample(self) -> None:
        while not self._stop.is_set():
            value = self.read()
            self._interval, self.overall = max(self._interval, value), max(self.overall, value)
            self._stop.wait(SAMPLE_SECONDS)

    def __enter__(self):
        if self._thread:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread:
            self._thread.join()

    def begin(self) -> None:
        self._interval = self.read() if self.read else 0
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def end(self, label: str) -> None:
        if self.read:
            self._interval = max(self._interval, self.read())
            self.rss[label] = max(self.rss.get(label, 0), self._interval)
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            self.gpu[label] = max(self.gpu.get(label, 0), torch.cuda.max_memory_allocated())


class MeasuredExecutor:
    """An executor that measures the memory of each batch it yields (the computation runs inside
    the inner executor's generator, between two results); everything else is the inner one's."""

    def __init__(self, inner, meter: MemoryMeter, kind_of):
        self.inner, self.meter, self.kind_of = inner, meter, kind_of

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _measured(self, results, label_of):
        results = iter(results)
        while True:
            self.meter.begin()
            try:
                result = next(results)
            except StopIteration:
                return
            self.meter.end(label_of(result))
            yield result

    def run(self, batches, load_inputs, forced):
        return self._measured(self.inner.run(batches, load_inputs, forced),
                              lambda result: self.kind_of(result.batch.method))

    def score(self, *args, **kwargs):
        """Score batches (a runner that scores in its executors): their memory is the metrics'."""
        return self._measured(self.inner.score(*args, **kwargs), lambda result: "metrics")

    def close(self) -> None:
        self.inner.close()


SETUP_PHASES = ("prepare_weights", "load_models")
EXECUTE_PHASE, SCORING_PHASE = "_execute", "_score_and_publish"


def instrument(runner, meter: MemoryMeter, kind_of) -> dict[str, float]:
    """Time the runner's phases (those it has: weights, model loading, execution, scoring) and
    measure memory per stage kind, by wrapping this instance's methods; returns the timings dict
    that fills as the run goes."""
    phases: dict[str, float] = {}

    def timed(name, function, label=None):
        def wrapper(*args, **kwargs):
            if label:
                meter.begin()
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - start
                if label:
                    meter.end(label)
        return wrapper

    for name in (*SETUP_PHASES, EXECUTE_PHASE, SCORING_PHASE):
        function = getattr(runner, name, None)
        if callable(function):
            setattr(runner, name, timed(name, function, "metrics" if name == SCORING_PHASE else None))
    make_executor = getattr(runner, "_executor", None)
    if callable(make_executor):
        runner._executor = lambda *args, **kwargs: MeasuredExecutor(make_executor(*args, **kwargs), meter, kind_of)
    return phases


def stage_group(spec) -> str:
    """The row a method's stages are counted in: its kind, MEF split into classical and deep (the
    goal counts classical fusion with the metrics)."""
    return f"mef-{'deep' if spec.deep else 'classical'}" if spec.kind == "mef" else spec.kind


def stage_rows(database: Path, run_id: str) -> list[dict]:
    """The run's computed stages from `stage_timings`: method, scene, seconds, scale and whether it
    read other stages' outputs (`level` 1) or the scene's images (0)."""
    connection = sqlite3.connect(database)
    try:
        rows = connection.execute("SELECT stage_key, method, scene, seconds, cached, scale, inputs FROM stage_timings "
                                  "WHERE run_id = ?", (run_id,)).fetchall()
    finally:
        connection.close()
    keys = {row[0] for row in rows}
    return [{"method": method, "scene": scene, "seconds": float(seconds), "scale": scale,
             "level": int(any(key in keys for key in json.loads(inputs or "[]")))}
            for _key, method, scene, seconds, cached, scale, inputs in rows if not cached]


# -- the benchmark ----------------------------------------------------------------------------------

def platform_record(device: str) -> dict:
    import torch

    record = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
              "device": device, "device_name": platform.processor() or platform.machine(),
              "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
              "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    if device.startswith("cuda"):
        record["device_name"] = torch.cuda.get_device_name(0)
        record["cuda"] = torch.version.cuda
    return record


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=4, help="measured scenes (default 4)")
    parser.add_argument("--long-side", type=int, default=1500,
                        help="HR long side, the profile's dataset.hr_long_side (default 1500: 844x1500 as in the paper "
                             "profile; smaller for a quick CPU run)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--methods", nargs="+", metavar="PIPELINE",
                        help="pipelines to run, as `cfanet-bench run` takes them (default: the profile's grid)")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 4, 8], metavar="K",
                        help="device counts to project for under Ray (default 1 2 4 8)")
    parser.add_argument("--json", type=Path, help="write every figure as JSON to this file")
    parser.add_argument("--profile", default="paper", help="profile of --config to derive from (default paper)")
    parser.add_argument("--config", type=Path, default=REPO / "benchmark.toml",
                        help="configuration holding the profile (default: the repository's benchmark.toml)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="scenes of a separate, unmeasured run first in the same process (default 1; 0: none)")
    parser.add_argument("--frames", type=int, default=3, help="exposures per synthetic SICE sequence (default 3)")
    parser.add_argument("--source-long-side", type=int, default=0,
                        help="long side of the written files; the dataset resizes them to --long-side as it does "
                             "SICE's 3000-6000 px originals (default 0: written at --long-side)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scenes and the weights (default 0)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    parser.add_argument("--verbose", action="store_true", help="print the runner's messages")
    args = parser.parse_args(argv)
    if args.scenes < 1:
        parser.error("--scenes must be at least 1")
    if args.long_side < 16:
        parser.error("--long-side must be at least 16")
    if args.warmup < 0:
        parser.error("--warmup must be 0 or more")
    if any(k < 1 for k in args.k):
        parser.error("--k values must be at least 1")
    if args.source_long_side and args.source_long_side < args.long_side:
        parser.error("--source-long-side must not be below --long-side")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no CUDA device")
    return args


def prepare(args, root: Path) -> dict:
    """Scenes, split files, weights and the derived `benchmark.toml` in `root`; returns what was made."""
    from benchmarks.release_weights import container_of, write_release_weights
    from benchmarks.synthetic_sice import sice_scene_names, write_sice_scenes
    from pipelines.catalog import find_pipeline, profile_grid
    from pipelines.config import parse_config
    from pipelines.planning import components_of
    from pipelines.registry import methods

    source = tomllib.loads(args.config.read_text(encoding="utf-8"))
    names = sice_scene_names(args.scenes + args.warmup)
    measured, warm = names[:args.scenes], names[args.scenes:]
    written_side = args.source_long_side or args.long_side
    start = time.perf_counter()
    sets = {"measured": (root / "SICE", measured)} | ({"warmup": (root / "SICE-warmup", warm)} if warm else {})
    for data_root, scene_names in sets.values():
        write_sice_scenes(data_root, scene_names, written_side, frames=args.frames, seed=args.seed)
        (data_root.parent / f"{data_root.name}-split.txt").write_text(
            "# scenes written by benchmarks/paper_scale.py\n" + "\n".join(scene_names) + "\n", encoding="utf-8")
    scenes_seconds = time.perf_counter() - start

    def profile_table(data_root: Path, folder: Path, weights: dict) -> dict:
        return derived_profile(source, args.profile, folder, data_root, data_root.parent / f"{data_root.name}-split.txt",
                               args.long_side, args.device, weights)

    # which pipelines, hence which weights: from the profile as it stands (no weights yet)
    draft = {**({"methods": source["methods"]} if "methods" in source else {}), "default_profile": args.profile,
             "profiles": {args.profile: profile_table(root / "SICE", root / "run", {})}}
    config = parse_config(draft, source=str(args.config), base_dir=args.config.parent)
    profile = config.profile(args.profile)
    table = methods(config)
    grid = profile_grid(table, profile.grid, config.source, profile.name)
    try:
        pipelines = ([find_pipeline(name, table, grid) for name in args.methods] if args.methods
                     else grid.pipelines())
    except KeyError as exc:
        raise SystemExit(f"error: --methods: {exc.args[0]}") from None
    components = components_of(pipelines)
    declared = source["profiles"][args.profile].get("weights", {})
    start = time.perf_counter()
    weights, containers = {}, {}
    for name in components:
        spec = table.specs[name]
        for key in spec.weight_keys(profile.scales):
            scale = int(key.rsplit(".x", 1)[1]) if spec.scale_specific else profile.scales[0]
            relative = Path(declared[key]) if key in declared else Path("weights") / f"{key}.pth"
            inside = not relative.is_absolute() and ".." not in relative.parts
            target = root / relative if inside else root / "weights" / relative.name
            weights[key] = str(write_release_weights(spec, scale, target, seed=args.seed))
            containers[key] = container_of(spec)
    weights_seconds = time.perf_counter() - start

    full = {**({"methods": source["methods"]} if "methods" in source else {}),
            "default_profile": args.profile,
            "profiles": {args.profile: profile_table(root / "SICE", root / "run", weights)}}
    if warm:
        full["profiles"][f"{args.profile}-warmup"] = profile_table(root / "SICE-warmup", root / "warmup", weights)
    config_path = root / "benchmark.toml"
    config_path.write_text("# derived by benchmarks/paper_scale.py from profile "
                           f"{args.profile!r} of {args.config}\n" + toml_text(full), encoding="utf-8")
    return {"config": config_path, "pipelines": [p.name for p in pipelines],
            "grid": [p.name for p in grid.pipelines()],
            "components": components, "weights": weights, "containers": containers, "scales": list(profile.scales),
            "measured_scenes": measured, "warmup_scenes": warm, "written_long_side": written_side,
            "scenes_seconds": scenes_seconds, "weights_seconds": weights_seconds}


def run_measured(args, made: dict) -> dict:
    """The warm-up run (if any), then the measured run with its phases and memory instrumented."""
    import torch

    from pipelines.config import load_config
    from pipelines.registry import methods
    from pipelines.runner import Runner

    config = load_config(made["config"])
    table = methods(config)
    messages: list[str] = []

    def log(message: str) -> None:
        messages.append(message)
        if args.verbose:
            print(f"  runner: {message}")

    if made["warmup_scenes"]:
        start = time.perf_counter()
        Runner(config, f"{args.profile}-warmup", show_progress=False, log=log).run(made["pipelines"])
        warmup_seconds = time.perf_counter() - start
    else:
        warmup_seconds = 0.0

    def kind_of(method: str) -> str:
        return stage_group(table.specs[method])

    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.synchronize()
    with MemoryMeter(cuda) as meter:
        runner = Runner(config, args.profile, show_progress=False, log=log)
        phases = instrument(runner, meter, kind_of)
        summary = runner.run(made["pipelines"])
    rows = stage_rows(summary.database, summary.run_id)
    return {"summary": summary, "phases": phases, "rows": rows, "meter": meter, "table": table,
            "warmup_seconds": warmup_seconds, "messages": messages}


def scoring_times(summary, phases: dict[str, float], wall: float, stage_seconds: float, setup: float) -> dict:
    """How long the run spent on metrics, from the best record there is: the runner's own
    (`RunSummary.scoring_wall_seconds`, `score_seconds`: a runner that scores in its executors),
    else the timed `Runner._score_and_publish` call, else wall time minus stage compute and setup.
    `wall`: the scoring phase (metric cache, scene loads, publishing, scoring, writing values);
    `compute`: the executors' time on the metrics themselves (None when not recorded)."""
    record = {"images": int(getattr(summary, "scores_computed", 0) or 0), "compute": None, "per_metric": {},
              "in_executors": False}
    own_wall = getattr(summary, "scoring_wall_seconds", None)
    if own_wall:
        record.update(wall=float(own_wall), compute=float(getattr(summary, "score_seconds", 0.0)),
                      per_metric=dict(getattr(summary, "metric_seconds", {}) or {}), in_executors=True,
                      source="the runner's own record (RunSummary.scoring_wall_seconds for the scoring phase: "
                             "metric cache, scene loads, publishing, scoring; score_seconds for the executors' "
                             "metric computations)")
    elif SCORING_PHASE in phases:
        record.update(wall=phases[SCORING_PHASE],
                      source=f"timed around Runner.{SCORING_PHASE} (every metric of the profile on every final image "
                             f"in the driver, plus publishing the images; the runner records no metric timings)")
    else:
        record.update(wall=max(wall - stage_seconds - setup, 0.0),
                      source="wall time minus stage compute and setup (the runner has no scoring call to time and "
                             "records no metric timings): includes scanning scenes, storing outputs and publishing")
    return record


def analyse(args, made: dict, measured: dict) -> dict:
    """Every figure of the run, the projection and the goal verdict, as plain values."""
    from benchmarks.synthetic_sice import SICE_HR_SIZE, hr_size_for
    from cfanet.data.splits import SICE_PART_SIZES, sice_default_split

    summary, phases, rows, meter, table = (measured[k] for k in ("summary", "phases", "rows", "meter", "table"))
    wall = summary.wall_seconds
    scenes = args.scenes
    mib = 2 ** 20

    per_method: dict[tuple[str, str], dict] = {}
    by_group: dict[str, dict] = defaultdict(lambda: {"stages": 0, "seconds": 0.0})
    for row in rows:
        spec = table.specs[row["method"]]
        where = "HR" if spec.kind == "mef" and row["level"] else "LR"
        entry = per_method.setdefault((row["method"], where), {"method": row["method"], "kind": spec.kind,
                                                                 "deep": spec.deep, "input": where,
                                                                 "stages": 0, "seconds": 0.0})
        entry["stages"] += 1
        entry["seconds"] += row["seconds"]
        by_group[stage_group(spec)]["stages"] += 1
        by_group[stage_group(spec)]["seconds"] += row["seconds"]
    stage_seconds = sum(r["seconds"] for r in rows)

    setup = sum(phases.get(name, 0.0) for name in SETUP_PHASES)
    scoring = scoring_times(summary, phases, wall, stage_seconds, setup)
    scored = scoring["images"] or len(made["pipelines"]) * scenes * len(made["scales"])
    metrics_seconds = scoring["wall"]
    driver_other = max(wall - setup - stage_seconds - metrics_seconds, 0.0)
    storing = phases[EXECUTE_PHASE] - stage_seconds if EXECUTE_PHASE in phases else None

    def kind_record(stages: int, seconds: float, labels: list[str]) -> dict:
        rss = [meter.rss[label] for label in labels if label in meter.rss]
        gpu = [meter.gpu[label] for label in labels if label in meter.gpu]
        return {"stages": stages, "seconds": seconds, "images_per_second": stages / seconds if seconds > 0 else None,
                "share_of_wall": seconds / wall if wall > 0 else None,
                "peak_rss_mib": max(rss) / mib if rss else None, "peak_cuda_mib": max(gpu) / mib if gpu else None}

    kinds = {}
    for kind in ("sr", "mef", "joint"):
        parts = [g for g in by_group if g == kind or g.startswith(kind + "-")]
        kinds[kind] = kind_record(sum(by_group[g]["stages"] for g in parts),
                                  sum(by_group[g]["seconds"] for g in parts), parts)
        if kind == "mef":  # its two halves, as rows of their own (the goal counts classical fusion)
            for sub in ("mef-classical", "mef-deep"):
                if sub in by_group:
                    kinds[sub] = kind_record(by_group[sub]["stages"], by_group[sub]["seconds"], [sub])
    kinds["metrics"] = kind_record(scored, metrics_seconds, ["metrics"])
    kinds["metrics"]["unit"] = "scored final images"
    if scoring["compute"] is not None:
        kinds["metrics-compute"] = kind_record(scored, scoring["compute"], [])
        kinds["metrics-compute"]["per_metric_seconds"] = scoring["per_metric"]
    kinds["setup"] = {"seconds": setup, "share_of_wall": setup / wall if wall else None}
    kinds["driver-other"] = {"seconds": driver_other, "share_of_wall": driver_other / wall if wall else None,
                             "storing_outputs_seconds": storing}

    # projection
    measured_hr = hr_size_for(args.long_side)
    pixel_ratio = (SICE_HR_SIZE[0] * SICE_HR_SIZE[1]) / (measured_hr[0] * measured_hr[1])
    metric_compute = scoring["compute"] if scoring["in_executors"] else 0.0

    def scene_seconds(seconds: float) -> float:
        return seconds / scenes * pixel_ratio

    per_scene = {"stage_compute": scene_seconds(stage_seconds),
                 "classical_fusion": scene_seconds(by_group.get("mef-classical", {}).get("seconds", 0.0)),
                 "metrics": scene_seconds(metrics_seconds),
                 "metrics_in_executors": scene_seconds(metric_compute),
                 "driver_other": scene_seconds(driver_other)}
    targets = {"SICE (both parts, as the paper scored)": sum(SICE_PART_SIZES.values()),
               "default test split (sice-default)": len(sice_default_split())}
    if GOAL_SCENES not in targets.values():
        targets[f"goal ({GOAL_SCENES} scenes)"] = GOAL_SCENES

    def projected(count: int, k: int, all_scoring_parallel: bool = False) -> float:
        parallel_metrics = per_scene["metrics"] if all_scoring_parallel else per_scene["metrics_in_executors"]
        parallel = per_scene["stage_compute"] + parallel_metrics
        serial = per_scene["driver_other"] + per_scene["metrics"] - parallel_metrics
        return setup + count * (parallel / k + serial)

    projection = {label: {"scenes": count, "seconds": {str(k): projected(count, k) for k in args.k}}
                  for label, count in targets.items()}
    if not scoring["in_executors"]:
        for label, count in targets.items():
            projection[label]["seconds_if_scoring_in_executors"] = {str(k): projected(count, k, True) for k in args.k}
    parallel_words = ("stage compute + metric compute" if scoring["in_executors"] else "stage compute")
    model = ("per-scene times = measured / scenes x HR pixel ratio "
             f"({SICE_HR_SIZE[0]}x{SICE_HR_SIZE[1]} over {measured_hr[0]}x{measured_hr[1]} = {pixel_ratio:.3g}); "
             f"T_K(S) = setup + S x (({parallel_words}) / K + the rest of scoring + driver other): batches fan out "
             "over K devices (Ray) while the driver "
             + ("stores outputs and publishes" if scoring["in_executors"] else "stores outputs, scores and publishes")
             + " serially; no overlap of driver work with computation assumed, Ray's own costs not included")

    # goal
    goal_time = projected(GOAL_SCENES, 1)
    goal_share = (GOAL_SCENES * (per_scene["classical_fusion"] + per_scene["metrics"])) / goal_time
    measured_share = (by_group.get("mef-classical", {}).get("seconds", 0.0) + metrics_seconds) / wall if wall else None
    device_name = measured["platform"]["device_name"]
    complete = set(made["pipelines"]) == set(made["grid"])
    goal = {"scenes": GOAL_SCENES, "seconds_limit": GOAL_SECONDS, "share_limit": GOAL_SHARE,
            "projected_seconds": goal_time, "projected_share": goal_share, "measured_share": measured_share,
            "time_met": goal_time <= GOAL_SECONDS, "share_met": goal_share <= GOAL_SHARE,
            "goal_device": any(d in device_name for d in GOAL_DEVICES), "complete_grid": complete}
    goal["met"] = goal["time_met"] and goal["share_met"]

    return {"platform": measured["platform"],
            "settings": {"profile": args.profile, "scenes": scenes, "warmup_scenes": len(made["warmup_scenes"]),
                         "hr_size": list(measured_hr), "written_long_side": made["written_long_side"],
                         "frames": args.frames, "scales": made["scales"], "pipelines": made["pipelines"],
                         "grid_size": len(made["grid"]), "components": made["components"],
                         "containers": made["containers"], "seed": args.seed},
            "run": {"wall_seconds": wall, "stages_computed": summary.stages_computed,
                    "stage_seconds": stage_seconds, "metric_values": len(summary.results),
                    "memory_retries": [list(r) for r in summary.memory_retries],
                    "peak_rss_mib": meter.overall / mib if meter.read else None,
                    "phases": phases, "metrics_timing": scoring["source"],
                    "scoring_in_executors": scoring["in_executors"],
                    "preparation_seconds": {"scenes": made["scenes_seconds"], "weights": made["weights_seconds"],
                                            "warmup_run": measured["warmup_seconds"]}},
            "kinds": kinds,
            "methods": sorted(per_method.values(), key=lambda e: (KINDS.index(e["kind"]), e["method"], e["input"])),
            "projection": {"model": model, "per_scene_seconds_at_1500": per_scene, "setup_seconds": setup,
                           "targets": projection},
            "goal": goal}


# -- printing -------------------------------------------------------------------------------------------

def _fmt(value, spec: str, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width}{spec}}"


def print_report(result: dict) -> None:
    p, s, r = result["platform"], result["settings"], result["run"]
    print(f"platform: {p['platform']}, Python {p['python']}, torch {p['torch']}")
    print(f"device: {p['device']} ({p['device_name']}), torch threads {p['torch_threads']}, {p['cpus']} CPUs"
          + (f", load average {p['load_average']:.1f}" if p.get("load_average") is not None else ""))
    print(f"profile {s['profile']!r} (official configurations, random weights in the released containers), "
          f"x{'/x'.join(map(str, s['scales']))}, {len(s['pipelines'])} of {s['grid_size']} pipelines, "
          f"{s['scenes']} synthetic SICE scene(s) of {s['hr_size'][0]}x{s['hr_size'][1]} HR "
          f"(files at long side {s['written_long_side']}, {s['frames']} exposures), warm-up run on "
          f"{s['warmup_scenes']} scene(s)")
    print(f"run: wall {r['wall_seconds']:.1f} s, {r['stages_computed']} stages, stage compute {r['stage_seconds']:.1f} s, "
          f"{r['metric_values']} metric values; peak RSS "
          + (f"{r['peak_rss_mib']:.0f} MiB" if r["peak_rss_mib"] is not None else "unknown"))
    if r["memory_retries"]:
        print(f"  out-of-memory retries with smaller tiles: {r['memory_retries']}")
    print()
    print(f"{'stage kind':<16}{'count':>7}{'images/s':>10}{'seconds':>10}{'% wall':>8}{'peak RSS MiB':>14}"
          f"{'peak CUDA MiB':>15}")
    for name, k in result["kinds"].items():
        label = {"mef-classical": "  classical", "mef-deep": "  deep", "metrics": "metrics*",
                 "metrics-compute": "  in executors"}.get(name, name)
        share = None if k.get("share_of_wall") is None else 100 * k["share_of_wall"]
        print(f"{label:<16}{_fmt(k.get('stages'), 'd', 7)}{_fmt(k.get('images_per_second'), '.3f', 10)}"
              f"{k['seconds']:>10.1f}{_fmt(share, '.1f', 8)}{_fmt(k.get('peak_rss_mib'), '.0f', 14)}"
              f"{_fmt(k.get('peak_cuda_mib'), '.0f', 15)}")
    print(f"* metrics: scored final images; {r['metrics_timing']}")
    per_metric = result["kinds"].get("metrics-compute", {}).get("per_metric_seconds")
    if per_metric:
        print("  per metric: " + ", ".join(f"{name} {seconds:.3g} s" for name, seconds in per_metric.items()))
    other = result["kinds"]["driver-other"]
    print("  setup: weights hashing and model loading; driver-other: scanning scenes, planning, storing stage "
          "outputs (PNG), database"
          + ("" if other.get("storing_outputs_seconds") is None else
             f" (storing outputs between batches: {other['storing_outputs_seconds']:.1f} s)"))
    print()
    print(f"{'method':<14}{'input':>6}{'stages':>8}{'s/stage':>10}{'images/s':>10}")
    for m in result["methods"]:
        per = m["seconds"] / m["stages"]
        print(f"{m['method']:<14}{m['input']:>6}{m['stages']:>8}{per:>10.2f}{_fmt(1 / per if per else None, '.3f', 10)}")
    print()
    proj = result["projection"]
    ks = list(next(iter(proj["targets"].values()))["seconds"])
    print(f"projected wall time on {p['device']} ({p['device_name']}), K devices via Ray:")
    print(f"  model: {proj['model']}")
    per = proj["per_scene_seconds_at_1500"]
    print(f"  per 844x1500 scene: stage compute {per['stage_compute']:.2f} s (classical fusion "
          f"{per['classical_fusion']:.2f} s), metrics {per['metrics']:.2f} s"
          + (f" (in the executors {per['metrics_in_executors']:.2f} s)" if r["scoring_in_executors"] else "")
          + f", driver other {per['driver_other']:.2f} s; setup once {proj['setup_seconds']:.1f} s")
    print(f"  {'scenes':<44}" + "".join(f"{'K=' + k:>11}" for k in ks))
    for label, entry in proj["targets"].items():
        print(f"  {label + ' ' + str(entry['scenes']):<44}" + "".join(f"{_minutes(v):>11}" for v in entry["seconds"].values()))
        if "seconds_if_scoring_in_executors" in entry:
            print(f"  {'  if scoring ran in the executors':<44}"
                  + "".join(f"{_minutes(v):>11}" for v in entry["seconds_if_scoring_in_executors"].values()))
    print()
    g = result["goal"]
    print(f"goal (issue 17): one H100/H200, all 34 methods, {g['scenes']} SICE-size scenes in <= "
          f"{g['seconds_limit'] / 60:.0f} min, metrics + classical fusion <= {100 * g['share_limit']:.0f}% of wall")
    print(f"  projected on this device: {_minutes(g['projected_seconds'])} "
          f"({'met' if g['time_met'] else 'not met'}); metrics + classical fusion {100 * g['projected_share']:.1f}% "
          f"({'met' if g['share_met'] else 'not met'}); in this run: "
          + ("-" if g["measured_share"] is None else f"{100 * g['measured_share']:.1f}%"))
    caveats = []
    if not g["goal_device"]:
        caveats.append(f"this device ({p['device_name']}) is not an H100/H200: the verdict is for this device")
    if not g["complete_grid"]:
        caveats.append(f"only {len(s['pipelines'])} of the grid's {s['grid_size']} pipelines ran")
    if s["hr_size"] != [844, 1500]:
        caveats.append("measured below SICE's size and projected by pixel count, fixed costs per stage included: an "
                       "upper bound")
    if not s["warmup_scenes"]:
        caveats.append("no warm-up run: first-call costs (kernel selection per shape) are in the figures")
    print(f"  verdict: {'MEETS' if g['met'] else 'DOES NOT MEET'} the goal"
          + (f" ({'; '.join(caveats)})" if caveats else ""))


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else (f"{seconds / 60:.1f} min" if seconds < 7200
                                                     else f"{seconds / 3600:.1f} h")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="cfanet-paper-scale-"))
    try:
        platform_now = platform_record(args.device)  # before the work: the load average is other processes'
        made = prepare(args, root)
        measured = run_measured(args, made)
        measured["platform"] = platform_now
        result = analyse(args, made, measured)
        print_report(result)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
            print(f"wrote {args.json}")
    finally:
        if args.keep:
            what = "run " + " ".join(args.methods) if args.methods else "run-all"
            print(f"kept {root} (rerun: cfanet-bench --config {root / 'benchmark.toml'} {what} --force --no-report)")
        else:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
