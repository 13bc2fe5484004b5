"""Runtime and parameter count per method, from the stage timings and manifests of the results store.

How a pipeline's runtime is attributed. The store records one `stage_timings` row per stage of a
run: the component that ran (e.g. RCAN), the scene, the seconds, whether it came from the cache
(then 0 s) and, in databases written since they were added, the scale and the stage's input keys
(image keys of the scene's LR pair, or other stages' keys). Stages are shared between pipelines, so
a row does not say which pipeline it served; the pipeline's composition (the report's grid,
`reports.grid`) and the stages' inputs do:

    SR+MEF  S+M : t[S(over)] + t[S(under)] + t[M on those two]    (the M stage whose inputs are S stages)
    MEF+SR  M+S : t[M(over, under)] + t[S on the fused image]     (the S stage whose input is an M stage
                                                                   on the LR pair)
    joint       : t[joint]                                        (the J stage on the LR pair)

per (scale, scene), where each t is the seconds of that stage key in the latest run that computed
it (cached = 0), in whichever run of the profile that was. This is the time the pipeline would take
alone: a stage that pipelines share is counted in full for each. It is model compute only (inputs
already in memory; model loading, PNG I/O and scoring excluded) on the device in the manifest of
the run that computed it. A method the grid cannot compose (order "other") gets no runtime.

Older databases record neither scale nor inputs. For them the roles are read off the recording
order, which older runners kept fixed: for every pipeline in the run's order (the manifest's
`pipelines`), `S(over), S(under), M(S(over), S(under))` for SR+MEF, `M(over, under), S(fused)` for
MEF+SR, one stage for a joint network, each stage once, scene by scene, scales in ascending order.
When a run's rows do not match that sequence, its pipelines get no runtime and the page says so;
the per-component totals (plain sums of computed stage seconds) need no attribution.

Parameter counts come from the manifests (`parameters`: {"NAME.xS": count}) of the run that produced
the method's scores or of another run with the same weights file (see `component_parameters`); a
pipeline's count is the sum of its components'. Components without learned parameters (the grid's
`"learned": false`, or no weights in the manifest's `weights`; for older manifests the classical MGFF
and Fast SPD-MEF) count 0.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable

import numpy as np
import pandas as pd

from reports.data import ReportData
from reports.grid import Grid, PipelineInfo


def pipeline_roles(spec: PipelineInfo) -> list[tuple]:
    """The stage roles a pipeline needs, in execution order ([] when its composition is unknown)."""
    if spec.order == "SR+MEF":
        return [("sr", spec.sr, "over"), ("sr", spec.sr, "under"), ("mef", spec.mef, f"on {spec.sr}")]
    if spec.order == "MEF+SR":
        return [("mef", spec.mef, "lr"), ("sr", spec.sr, f"on {spec.mef}")]
    if spec.order == "joint":
        return [("joint", spec.joint or spec.name, "lr")]
    return []


def scene_sequence(pipelines: list[str], grid: Grid) -> list[tuple]:
    """Roles of one scene's stages in the order the runner executes them (shared stages once)."""
    sequence: dict[tuple, None] = {}
    for name in pipelines:
        for role in pipeline_roles(grid.get(name)):
            sequence.setdefault(role, None)
    return list(sequence)


def role_keys(data: ReportData, run_id: str) -> tuple[dict[tuple, str] | None, str]:
    """{(scale, scene, role): stage_key} of a finished run, or (None, why not)."""
    run = data.run(run_id)
    pipelines = run.manifest.get("pipelines")
    if run.status != "finished" or not isinstance(pipelines, list):
        return None, f"run {run_id} has no recorded pipeline list"
    unknown = [name for name in pipelines if not isinstance(name, str) or name not in data.grid
               or not pipeline_roles(data.grid.get(name))]
    if unknown:
        return None, f"run {run_id} lists pipelines of unknown composition: {', '.join(map(str, unknown[:5]))}"
    sequence = scene_sequence(pipelines, data.grid)
    if not sequence:
        return None, f"run {run_id} has an empty pipeline list"
    rows = data.timings[data.timings.run_id == run_id].sort_values("seq")
    if len(rows) == 0 or len(rows) % len(sequence):
        return None, f"run {run_id}: {len(rows)} timing rows do not split into scenes of {len(sequence)} stages"
    run_scores = data.scores[data.scores.run_id == run_id]
    scales_of = run_scores.groupby("scene")["scale"].unique().map(sorted).to_dict()
    occurrences: dict[str, int] = defaultdict(int)
    mapping: dict[tuple, str] = {}
    methods = rows["method"].tolist()
    scenes = rows["scene"].tolist()
    keys = rows["stage_key"].tolist()
    for start in range(0, len(rows), len(sequence)):
        scene = scenes[start]
        chunk = slice(start, start + len(sequence))
        if set(scenes[chunk]) != {scene} or methods[chunk] != [role[1] for role in sequence]:
            return None, f"run {run_id}: the recorded stages of scene {scene!r} are not in the expected order"
        scales = scales_of.get(scene, [])
        index = occurrences[scene]
        occurrences[scene] += 1
        if index >= len(scales):
            return None, f"run {run_id}: scene {scene!r} has more recorded stage sets than scales"
        for role, key in zip(sequence, keys[chunk]):
            mapping[(int(scales[index]), scene, role)] = key
    return mapping, ""


def computed_seconds(data: ReportData) -> dict[str, float]:
    """stage_key -> seconds of its latest computation (cached = 0) in any run of the profile."""
    order = {run.run_id: i for i, run in enumerate(data.all_runs)}
    computed = data.timings[data.timings.cached == 0]
    if computed.empty:
        return {}
    computed = computed.assign(order=computed.run_id.map(order)).sort_values(["order", "seq"])
    return computed.groupby("stage_key")["seconds"].last().to_dict()


def _inputs(text) -> tuple[str, ...] | None:
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return tuple(value) if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


Resolver = Callable[[int, str, str], "list[str] | None"]   # (scale, scene, pipeline) -> its stage keys


def graph_resolver(data: ReportData, run_id: str) -> Resolver | None:
    """Stage keys of a pipeline from the recorded scale and inputs of a run's stages (see the module
    docstring); None when the run's rows lack them (an older database)."""
    rows = data.timings[data.timings.run_id == run_id]
    if rows.empty or "scale" not in rows or "inputs" not in rows or rows["scale"].isna().any():
        return None
    parsed = [_inputs(text) for text in rows["inputs"]]
    if any(p is None for p in parsed):
        return None
    stages = {key: (method, inputs) for key, method, inputs in zip(rows.stage_key, rows.method, parsed)}
    places: dict[tuple[int, str], dict[str, list[tuple[str, tuple[str, ...]]]]] = defaultdict(lambda: defaultdict(list))
    for key, method, scale, scene, inputs in zip(rows.stage_key, rows.method, rows.scale, rows.scene, parsed):
        places[(int(scale), str(scene))][method].append((key, inputs))

    def on_images(inputs) -> bool:
        return all(i not in stages for i in inputs)

    def of(key: str, component: str | None) -> bool:
        return key in stages and stages[key][0] == component

    def resolve(scale: int, scene: str, name: str) -> list[str] | None:
        spec = data.grid.get(name)
        place = places.get((scale, scene), {})
        if spec is None:
            return None
        if spec.order == "SR+MEF":
            for key, inputs in place.get(spec.mef, []):
                if len(inputs) == 2 and all(of(i, spec.sr) and on_images(stages[i][1]) for i in inputs):
                    return [*inputs, key]
        elif spec.order == "MEF+SR":
            for key, inputs in place.get(spec.sr, []):
                if len(inputs) == 1 and of(inputs[0], spec.mef) and on_images(stages[inputs[0]][1]):
                    return [inputs[0], key]
        elif spec.order == "joint":
            for key, inputs in place.get(spec.joint or spec.name, []):
                if on_images(inputs):
                    return [key]
        return None

    return resolve


def sequence_resolver(data: ReportData, run_id: str) -> tuple[Resolver | None, str]:
    """Stage keys of a pipeline from the recording order of an older run (see the module docstring)."""
    mapping, why = role_keys(data, run_id)
    if mapping is None:
        return None, why

    def resolve(scale: int, scene: str, name: str) -> list[str] | None:
        roles = pipeline_roles(data.grid.get(name))
        keys = [mapping.get((scale, scene, role)) for role in roles]
        return keys if roles and all(key is not None for key in keys) else None

    return resolve, ""


def pipeline_runtimes(data: ReportData) -> tuple[pd.DataFrame, list[str]]:
    """Per (scale, method): mean and total attributed seconds per scene, scenes timed, scenes scored.
    Returns the frame and notes on what could not be attributed."""
    seconds = computed_seconds(data)
    resolvers: dict[str, Resolver | None] = {}
    notes: list[str] = []
    rows = []
    for scale in data.scales:
        scored = data.scores[data.scores.scale == scale]
        for name in data.methods:
            run_id = data.method_runs[name]
            if run_id not in resolvers:
                resolvers[run_id] = graph_resolver(data, run_id)
                if resolvers[run_id] is None:
                    resolvers[run_id], why = sequence_resolver(data, run_id)
                    if why:
                        notes.append(why)
            resolve = resolvers[run_id]
            scenes = sorted(scored.loc[scored.method == name, "scene"].unique())
            per_scene = []
            for scene in scenes:
                if resolve is None:
                    break
                keys = resolve(scale, scene, name)
                if keys and all(key in seconds for key in keys):
                    per_scene.append(sum(seconds[key] for key in keys))
            rows.append({"scale": scale, "method": name, "run_id": run_id,
                         "seconds_per_scene": float(np.mean(per_scene)) if per_scene else float("nan"),
                         "seconds_total": float(np.sum(per_scene)) if per_scene else float("nan"),
                         "scenes_timed": len(per_scene), "scenes_scored": len(scenes)})
    frame = pd.DataFrame(rows, columns=["scale", "method", "run_id", "seconds_per_scene", "seconds_total",
                                        "scenes_timed", "scenes_scored"])
    return frame, notes


def component_seconds(data: ReportData) -> pd.DataFrame:
    """Per component: stages computed, their total seconds and mean seconds per stage (all runs)."""
    computed = data.timings[data.timings.cached == 0]
    frame = computed.groupby("method")["seconds"].agg(["count", "sum", "mean"]).reset_index()
    frame.columns = ["component", "stages_computed", "seconds_total", "seconds_per_stage"]
    return frame


def _weights_sha(manifest: dict, key: str) -> str | None:
    entry = (manifest.get("weights") or {}).get(key)
    return entry.get("sha256") if isinstance(entry, dict) else None


def component_parameters(data: ReportData, component: str, scale: int, run_id: str) -> int | None:
    """Learned parameters of `component` at `scale` as run in `run_id`: 0 for a classical method; else
    the count in that run's manifest, or in the latest other run of the profile that used the same
    weights file (a run whose stages all came from the cache loads no model and records none), or in
    the weights' details. A recorded 0 for a deep model means "not counted" and is ignored."""
    key = f"{component}.x{scale}"
    run = data.run(run_id)
    recorded_weights = run.manifest.get("weights")
    if data.grid.is_classical(component) or (isinstance(recorded_weights, dict) and key in recorded_weights
                                             and recorded_weights[key] is None):  # the runner's "no weights"
        return 0
    sha = _weights_sha(run.manifest, key)
    for other in [run] + [r for r in reversed(data.all_runs) if r.run_id != run_id]:
        if other is not run and (sha is None or _weights_sha(other.manifest, key) != sha):
            continue
        recorded = other.manifest.get("parameters")
        value = recorded.get(key) if isinstance(recorded, dict) else None
        if isinstance(value, (int, float)) and value > 0:
            return int(value)
        entry = (other.manifest.get("weights") or {}).get(key)
        details = entry.get("details") if isinstance(entry, dict) else None
        if isinstance(details, dict) and isinstance(details.get("num_parameters"), int) and details["num_parameters"] > 0:
            return int(details["num_parameters"])
    return None


def parameter_counts(data: ReportData) -> pd.DataFrame:
    """Per (scale, method): parameters of each component and in total (None when not recorded)."""
    rows = []
    for scale in data.scales:
        for name in data.methods:
            components = data.grid.get(name).components
            counts = {component: component_parameters(data, component, scale, data.method_runs[name])
                      for component in components}
            total = None if not counts or any(v is None for v in counts.values()) else sum(counts.values())
            rows.append({"scale": scale, "method": name, "parameters": total,
                         "components": ", ".join(f"{c}: {'not recorded' if v is None else f'{v:,}'}"
                                                 for c, v in counts.items())})
    return pd.DataFrame(rows, columns=["scale", "method", "parameters", "components"])


def runtime_table(data: ReportData) -> tuple[pd.DataFrame, list[str]]:
    """Runtimes and parameter counts per (scale, method) in Table 1 order, with notes."""
    runtimes, notes = pipeline_runtimes(data)
    params = parameter_counts(data)
    frame = runtimes.merge(params, on=["scale", "method"], how="left")
    order = {name: i for i, name in enumerate(data.grid.names)}
    frame = frame.sort_values(["scale", "method"], key=lambda s: s.map(order) if s.name == "method" else s)
    return frame.reset_index(drop=True), notes


def devices(data: ReportData) -> list[str]:
    """The devices of the runs that computed stages."""
    computing = set(data.timings.loc[data.timings.cached == 0, "run_id"])
    found = []
    for run in (run for run in data.all_runs if run.run_id in computing):
        device = run.manifest.get("device")
        name = run.manifest.get("device_name")
        if device:
            label = f"{device} ({name})" if name else str(device)
            if label not in found:
                found.append(label)
    return found
