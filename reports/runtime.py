"""Runtime and parameter count per method, from the stage timings and manifests of the results store.

How a pipeline's runtime is attributed. The store records one `stage_timings` row per stage of a
run: the component that ran (e.g. RCAN), the scene, the seconds, and whether it came from the cache
(then 0 s). Stages are shared between pipelines, so a row does not say which pipeline it served.
The runner executes (and records) each scene's stages in a fixed order: for every pipeline in the
run's order, `S(over), S(under), M(S(over), S(under))` for SR+MEF, `M(over, under), S(fused)` for
MEF+SR, one stage for a joint network, each stage once (later pipelines reuse earlier stages). From
a finished run's pipeline list (its manifest) this module rebuilds that sequence of stage *roles*,
checks it against the recorded rows (component by component, scene by scene; scales in ascending
order) and so learns which stage key is which role. Then, per scene:

    SR+MEF  S+M : t[S(over)] + t[S(under)] + t[M on the SR outputs]
    MEF+SR  M+S : t[M(over, under)] + t[S on the fused image]
    joint       : t[joint]

where each t is the seconds of that stage key in the latest run that computed it (cached = 0), in
whichever run of the profile that was. This is the time the pipeline would take alone: a stage that
pipelines share is counted in full for each. It is model compute only (inputs already in memory;
model loading, PNG I/O and scoring excluded) on the device in the manifest of the run that computed
it. When a run's rows do not match the expected sequence, its pipelines get no runtime and the page
says so; the per-component totals (plain sums of computed stage seconds) need no attribution.

Parameter counts come from the manifests (`parameters`: {"NAME.xS": count}) of the run that produced
the method's scores or of another run with the same weights file (see `component_parameters`); a
pipeline's count is the sum of its components'. Classical MEF methods (MGFF, Fast SPD-MEF) have no
learned parameters.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from pipelines.catalog import all_pipelines
from reports.data import PIPELINE_NAMES, ReportData

CLASSICAL = ("MGFF", "Fast-SPD-MEF")
_SPECS = {spec.name: spec for spec in all_pipelines()}


def pipeline_roles(name: str) -> list[tuple]:
    """The stage roles a pipeline needs, in execution order."""
    spec = _SPECS[name]
    if spec.order == "SR+MEF":
        return [("sr", spec.sr, "over"), ("sr", spec.sr, "under"), ("mef", spec.mef, f"on {spec.sr}")]
    if spec.order == "MEF+SR":
        return [("mef", spec.mef, "lr"), ("sr", spec.sr, f"on {spec.mef}")]
    return [("joint", spec.joint, "lr")]


def scene_sequence(pipelines: list[str]) -> list[tuple]:
    """Roles of one scene's stages in the order the runner executes them (shared stages once)."""
    sequence: dict[tuple, None] = {}
    for name in pipelines:
        for role in pipeline_roles(name):
            sequence.setdefault(role, None)
    return list(sequence)


def role_keys(data: ReportData, run_id: str) -> tuple[dict[tuple, str] | None, str]:
    """{(scale, scene, role): stage_key} of a finished run, or (None, why not)."""
    run = data.run(run_id)
    pipelines = run.manifest.get("pipelines")
    if run.status != "finished" or not isinstance(pipelines, list):
        return None, f"run {run_id} has no recorded pipeline list"
    if any(name not in _SPECS for name in pipelines):
        return None, f"run {run_id} lists unknown pipelines"
    sequence = scene_sequence(pipelines)
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


def pipeline_runtimes(data: ReportData) -> tuple[pd.DataFrame, list[str]]:
    """Per (scale, method): mean and total attributed seconds per scene, scenes timed, scenes scored.
    Returns the frame and notes on what could not be attributed."""
    seconds = computed_seconds(data)
    mappings: dict[str, dict | None] = {}
    notes: list[str] = []
    rows = []
    for scale in data.scales:
        scored = data.scores[data.scores.scale == scale]
        for name in data.methods:
            run_id = data.method_runs[name]
            if run_id not in mappings:
                mappings[run_id], why = role_keys(data, run_id)
                if why:
                    notes.append(why)
            mapping = mappings[run_id]
            scenes = sorted(scored.loc[scored.method == name, "scene"].unique())
            per_scene = []
            for scene in scenes:
                if mapping is None:
                    break
                keys = [mapping.get((scale, scene, role)) for role in pipeline_roles(name)]
                if all(key is not None and key in seconds for key in keys):
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
    if component in CLASSICAL:
        return 0
    key = f"{component}.x{scale}"
    run = data.run(run_id)
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
            spec = _SPECS[name]
            counts = {component: component_parameters(data, component, scale, data.method_runs[name])
                      for component in (spec.sr, spec.mef, spec.joint) if component}
            total = None if any(v is None for v in counts.values()) else sum(counts.values())
            rows.append({"scale": scale, "method": name, "parameters": total,
                         "components": ", ".join(f"{c}: {'not recorded' if v is None else f'{v:,}'}"
                                                 for c, v in counts.items())})
    return pd.DataFrame(rows, columns=["scale", "method", "parameters", "components"])


def runtime_table(data: ReportData) -> tuple[pd.DataFrame, list[str]]:
    """Runtimes and parameter counts per (scale, method) in Table 1 order, with notes."""
    runtimes, notes = pipeline_runtimes(data)
    params = parameter_counts(data)
    frame = runtimes.merge(params, on=["scale", "method"], how="left")
    order = {name: i for i, name in enumerate(PIPELINE_NAMES)}
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
