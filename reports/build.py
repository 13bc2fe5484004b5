"""Render every artefact of a report from a results database into one folder.

    <output>/index.html                    links everything; Table 1 and Figure 3 inline
    <output>/table1_x<S>.{html,tex,csv}    Table 1 (the .tex is a booktabs table for \\input)
    <output>/table1_x<S>_standalone.tex    the same table in a document that compiles alone
    <output>/figure3_x<S>_<scene>.{png,pdf}
    <output>/per_image.{html,csv}          every per-image score (HTML sortable)
    <output>/vs_cfanet.{html,csv}          every method against CFANet (bootstrap CI, Wilcoxon)
    <output>/runtime.{html,csv}            seconds per scene and parameter count per method
    <output>/manifest.html, manifest_<run>.json

File names never contain a name from the database as it is (scene names become letters, digits and
a hash), so nothing is written outside `<output>`. Nothing here imports torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipelines.catalog import all_pipelines, find_pipeline
from reports.data import (CONVENTIONS, MEF_SSIM_DESCRIPTION, METRIC_LABELS, METRICS, PIPELINE_NAMES, ReportData,
                          ReportError, load_report_data)
from reports.figure3 import DEFAULT_METHODS, Figure3, render_figure3, resolve_scene, safe_name
from reports.render import render_html, render_tex
from reports.runtime import component_seconds, devices, runtime_table
from reports.stats import N_RESAMPLES, SEED, compare_with_reference
from reports.table1 import DECIMALS, Table1, build_table1

CONVENTION_SHORT = {"paper": "RGB, data range 255, no border crop",
                    "sr": "Y channel, scale pixels cropped at each border"}
ORDER = {spec.name: spec.order for spec in all_pipelines()}


@dataclass
class ReportResult:
    output_dir: Path
    index: Path
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    demo_weights: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        lines = [f"report: {self.index}"]
        for path in self.files:
            if path != self.index:
                lines.append(f"  {path.relative_to(self.output_dir)}")
        if self.demo_weights:
            lines.append(f"note: {', '.join(self.demo_weights)} ran with DEMO weights (small configurations trained "
                         f"briefly on demo photographs), not the authors' weights; every page says so")
        lines += [f"warning: {text}" for text in self.warnings]
        return lines


def demo_sentence(names: list[str]) -> str:
    return (f"Demo weights: {', '.join(names)} ran with demo weights, small configurations trained briefly on demo "
            f"photographs, not the authors' published weights. These numbers show that the benchmark runs end to "
            f"end; they say nothing about how the published methods perform.")


def dataset_label(data: ReportData, given: str | None) -> str:
    recorded = data.latest_manifest.get("dataset")
    if isinstance(recorded, dict):
        recorded = recorded.get("name") or recorded.get("kind")
    if isinstance(recorded, str) and recorded:
        return recorded
    if given:
        return given
    return f"the scenes of profile {data.profile or data.latest_manifest.get('profile') or '?'}"


def table1_caption(table: Table1, demo: list[str]) -> str:
    text = (f"Mean PSNR, SSIM and MEF-SSIM of the 34 methods on {table.dataset} ({table.n_scenes} scene"
            f"{'s' if table.n_scenes != 1 else ''}) at \u00d7{table.scale}. PSNR and SSIM: convention "
            f"{table.convention} ({CONVENTION_SHORT.get(table.convention, table.convention)}); MEF-SSIM: the "
            f"official implementation. For each metric, the best of the 34 methods is in bold and the second "
            f"underlined.")
    if table.notes:
        text += " Note: " + "; ".join(table.notes) + "."
    if demo:
        text += " " + demo_sentence(demo)
    return text


def canonical_methods(names: list[str] | None) -> list[str]:
    if not names:
        return list(DEFAULT_METHODS)
    try:
        return [find_pipeline(name).name for name in names]
    except KeyError as exc:
        raise ReportError(exc.args[0]) from None


def _write(path: Path, text: str, written: list[Path]) -> Path:
    path.write_text(text, encoding="utf-8")
    written.append(path)
    return path


def _method_list(methods: list[str]) -> list[str]:
    return ["all 34 methods"] if len(methods) == len(PIPELINE_NAMES) else methods


def per_image_frame(data: ReportData) -> tuple[pd.DataFrame, list[dict]]:
    """Wide per-image scores (scale, scene, method, order, psnr_<conv>, ssim_<conv>..., mef_ssim, run_id)
    and the column descriptions for the HTML table."""
    scores = data.scores.copy()
    scores["column"] = [m if m == "mef_ssim" else f"{m}_{c}" for m, c in zip(scores.metric, scores.convention)]
    wide = scores.pivot_table(index=["scale", "scene", "method", "run_id"], columns="column", values="value",
                              aggfunc="first").reset_index()
    described = [(f"{m}_{c}", m, c) for c in data.conventions for m in ("psnr", "ssim")] + [("mef_ssim", "mef_ssim", "")]
    value_columns = [key for key, _, _ in described]
    for column in value_columns:
        if column not in wide:
            wide[column] = float("nan")
    wide["order"] = wide.method.map(ORDER)
    rank = {name: i for i, name in enumerate(PIPELINE_NAMES)}
    wide = wide.assign(_rank=wide.method.map(rank)).sort_values(["scale", "scene", "_rank"]).drop(columns="_rank")
    wide = wide[["scale", "scene", "method", "order", *value_columns, "run_id"]].reset_index(drop=True)
    columns = [{"key": "scale", "label": "scale", "numeric": True, "digits": 0},
               {"key": "scene", "label": "scene", "numeric": False},
               {"key": "method", "label": "method", "numeric": False},
               {"key": "order", "label": "order", "numeric": False}]
    for key, metric, convention in described:
        label = METRIC_LABELS[metric] + (f" ({convention})" if convention else "")
        columns.append({"key": key, "label": label, "numeric": True, "digits": DECIMALS[metric]})
    return wide, columns


def build_report(database: str | Path, output_dir: str | Path, *, run_id: str | None = None,
                 profile: str | None = None, scene: str | None = None, methods: list[str] | None = None,
                 convention: str = "paper", dataset: str | None = None, n_resamples: int = N_RESAMPLES,
                 figure_scales: list[int] | None = None) -> ReportResult:
    """Render the whole report of `database` into `output_dir` (created). Raises ReportError for what the
    user can fix: no database, unknown run/scene/method/convention."""
    data = load_report_data(database, run_id=run_id, profile=profile)
    if convention not in data.conventions:
        raise ReportError(f"no PSNR/SSIM results in convention {convention!r} "
                          f"(found: {', '.join(data.conventions) or 'none'})")
    chosen_methods = canonical_methods(methods)
    label = dataset_label(data, dataset)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    demo = data.demo_weights
    warnings = list(data.warnings)

    tables = []
    for scale in data.scales:
        table = build_table1(data, scale, convention, label)
        caption = table1_caption(table, demo)
        stem = f"table1_x{scale}"
        files = {"html": f"{stem}.html", "tex": f"{stem}.tex", "standalone": f"{stem}_standalone.tex",
                 "csv": f"{stem}.csv"}
        fragment = render_tex("table1.tex.j2", table=table, caption=caption)
        _write(output / files["tex"], fragment, written)
        _write(output / files["standalone"], render_tex("table1_standalone.tex.j2", scale=scale, body=fragment),
               written)
        means = table.means.rename_axis("method").reset_index()
        means.insert(0, "scale", scale)
        means.to_csv(output / files["csv"], index=False)
        written.append(output / files["csv"])
        tables.append({"table": table, "caption": caption, "files": files})

    figures: list[Figure3] = []
    scene_found = False
    for scale in figure_scales or data.scales:
        try:
            name = resolve_scene(data, scale, scene, chosen_methods)
        except ReportError:
            if scene is None:
                raise
            warnings.append(f"no Figure 3 at x{scale}: scene {scene!r} has no results at that scale")
            continue
        scene_found = True
        figure = render_figure3(data, scale, name, chosen_methods, convention, output)
        if figure.missing:
            warnings.append(f"Figure 3 at x{scale}: no image for {', '.join(figure.missing)}")
        figures.append(figure)
        written += [figure.png, figure.pdf]
    if scene is not None and not scene_found:
        resolve_scene(data, data.scales[0], scene)  # raises with the list of close matches

    notices = [{"kind": "demo", "text": demo_sentence(demo)}] if demo else []
    notices += [{"kind": "", "text": text} for text in warnings]
    common = {"notices": notices, "database": str(data.database), "selection": data.selection,
              "profile": data.profile or data.latest_manifest.get("profile") or "?", "is_index": False}

    for entry in tables:
        _write(output / entry["files"]["html"],
               render_html("table1.html.j2", title=f"Table 1 at x{entry['table'].scale}", table=entry["table"],
                           caption=entry["caption"], files=entry["files"], **common), written)

    per_image, columns = per_image_frame(data)
    per_image.to_csv(output / "per_image.csv", index=False)
    written.append(output / "per_image.csv")
    conventions = [{"name": c, "description": CONVENTIONS.get(c, c)} for c in data.conventions]
    _write(output / "per_image.html",
           render_html("per_image.html.j2", title="Per-image scores", rows=per_image.to_dict("records"),
                       columns=columns, conventions=conventions, mef_ssim_description=MEF_SSIM_DESCRIPTION,
                       csv="per_image.csv", **common), written)

    sections, frames = [], []
    for scale in data.scales:
        comparison = compare_with_reference(data, scale, convention, n_resamples=n_resamples)
        frames.append(comparison.assign(scale=scale))
        for metric in METRICS:
            rows = comparison[comparison.metric == metric].to_dict("records")
            sections.append({"scale": scale, "metric": metric, "metric_label": METRIC_LABELS[metric],
                             "digits": DECIMALS[metric], "rows": rows})
    stats = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not stats.empty:
        stats = stats[["scale"] + [c for c in stats.columns if c != "scale"]]
        stats.insert(4, "difference", "CFANet - method")
    stats.to_csv(output / "vs_cfanet.csv", index=False)
    written.append(output / "vs_cfanet.csv")
    _write(output / "vs_cfanet.html",
           render_html("stats.html.j2", title="Every method against CFANet", sections=sections,
                       n_resamples=f"{n_resamples:,}", seed=SEED, n_methods=max(0, len(data.methods) - 1),
                       convention=convention, csv="vs_cfanet.csv", **common), written)

    runtimes, runtime_notes = runtime_table(data)
    runtimes.to_csv(output / "runtime.csv", index=False)
    written.append(output / "runtime.csv")
    runtime_rows = [{**row, "parameters": None if pd.isna(row["parameters"]) else int(row["parameters"])}
                    for row in runtimes.to_dict("records")]
    _write(output / "runtime.html",
           render_html("runtime.html.j2", title="Runtime and parameters per method", rows=runtime_rows,
                       components=component_seconds(data).to_dict("records"), notes=runtime_notes,
                       devices=devices(data), demo_weights=demo, csv="runtime.csv", **common), written)

    manifest_runs = []
    for run in data.runs:
        file = f"manifest_{safe_name(run.run_id)}.json"
        text = json.dumps({"run_id": run.run_id, "profile": run.profile, "status": run.status,
                           "started": run.started, "finished": run.finished, "manifest": run.manifest},
                          indent=2, sort_keys=True, default=str)
        _write(output / file, text + "\n", written)
        weights = sorted((run.manifest.get("weights") or {}).items())
        manifest_runs.append({
            "run_id": run.run_id, "status": run.status, "profile": run.profile, "started": run.started,
            "finished": run.finished, "manifest": run.manifest, "demo_weights": run.demo_weights,
            "weights": [(name, entry if isinstance(entry, dict) else None) for name, entry in weights],
            "parameters": run.manifest.get("parameters") or {},
            "methods": _method_list([m for m in PIPELINE_NAMES if data.method_runs.get(m) == run.run_id]),
            "file": file, "json": json.dumps(run.manifest, indent=2, sort_keys=True, default=str)})
    _write(output / "manifest.html",
           render_html("manifest.html.j2", title="Run manifest", runs=manifest_runs, **common), written)

    files = {"per_image_html": "per_image.html", "per_image_csv": "per_image.csv", "stats_html": "vs_cfanet.html",
             "stats_csv": "vs_cfanet.csv", "runtime_html": "runtime.html", "runtime_csv": "runtime.csv",
             "manifest_html": "manifest.html"}
    index = _write(output / "index.html", render_html(
        "index.html.j2", title=f"cfanet-bench report: {common['profile']} profile", tables=tables,
        figures=[{"scale": f.scale, "scene": f.scene, "png": f.png.name, "pdf": f.pdf.name, "caption": f.caption,
                  "missing": f.missing, "methods": f.methods} for f in figures],
        files=files, manifest_files=[{"run_id": r["run_id"], "file": r["file"]} for r in manifest_runs],
        dataset=label, scales=data.scales, convention=convention,
        convention_description=CONVENTIONS.get(convention, convention), mef_ssim_description=MEF_SSIM_DESCRIPTION,
        runs=data.runs, **{**common, "is_index": True}), written)
    return ReportResult(output, index, written, warnings, demo)
