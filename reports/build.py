"""Render every artefact of a report from a results database into one folder.

    <output>/index.html                    links everything; Table 1 and Figure 3 inline
    <output>/table1_x<S>.{html,tex,csv}    Table 1 (the .tex is a booktabs table for \\input)
    <output>/table1_x<S>_standalone.tex    the same table in a document that compiles alone
    <output>/table1_x2_vs_paper.{tex,csv}  at the paper's scale: ours, the paper's value and ours - paper per
                                          method and metric (its HTML is on table1_x2.html), with a
                                          standalone .tex; table1_x2_vs_paper_rank.csv: Kendall's tau-b
    <output>/paper_scatter_x2.png          ours against the paper's values, one panel per metric
    <output>/figure3_x<S>_<scene>.{png,pdf}
    <output>/per_image.{html,csv}          every per-image score (HTML sortable)
    <output>/viewer.html                   the comparison viewer (`reports.viewer`: viewer_data.js,
                                           viewer.js, viewer.css, thumbs/)
    <output>/vs_cfanet.{html,csv}          every method against the reference method, CFANet in the paper's
                                          grid (bootstrap CI, Wilcoxon); the file names stay fixed
    <output>/runtime.{html,csv}            seconds per scene and parameter count per method
    <output>/manifest.html, manifest_<run>.json

File names never contain a name from the database as it is (scene names become letters, digits and
a hash), so nothing is written outside `<output>`. Nothing here imports torch.

Methods, their order and Table 1's layout come from the runs' grid (`reports.grid`); metrics, their
labels, decimals and which enter Table 1 from the runs' metric descriptors (`reports.metrics`).
Table 1 and the significance page show the Table 1 metrics; the per-image page and CSV show all.
The paper's own numbers (`reports.paper_reference`, compared in `reports.vs_paper`) sit beside Table 1
at the paper's scale, on its page, in companion LaTeX and CSV files and on the index. Every caption
(Table 1, beside the paper, Figure 3, the per-image, significance and runtime pages) and the printed
summary say which inference protocol the methods ran under (`reports.protocols`): the paper states none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from reports.data import CONVENTIONS, ReportData, ReportError, load_report_data
from reports.figure3 import DEFAULT_METHODS, Figure3, render_figure3, resolve_scene, safe_name
from reports.paper_reference import load_paper_reference
from reports.protocols import protocol_sentence
from reports.protocols import summary_line as protocol_summary_line
from reports.render import html_label, render_html, render_tex, tex_escape, tex_label
from reports.runtime import component_seconds, devices, runtime_table
from reports.stats import COLUMNS as STATS_COLUMNS
from reports.viewer import write_viewer
from reports.stats import N_RESAMPLES, SEED, compare_with_reference
from reports.table1 import Table1, build_table1
from reports.vs_paper import (PaperComparison, compare_with_paper, format_p, judge_comparability,
                              no_numbers_sentence, render_scatter)
from reports.vs_paper import summary_lines as paper_summary_lines

CONVENTION_SHORT = {"paper": "RGB, data range 255, no border crop",
                    "sr": "Y channel, scale pixels cropped at each border"}


@dataclass
class ReportResult:
    output_dir: Path
    index: Path
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    demo_weights: list[str] = field(default_factory=list)
    paper_lines: list[str] = field(default_factory=list)     # `paper: ...`: the comparison with the paper
    paper_comparisons: list[PaperComparison] = field(default_factory=list)
    protocol_line: str = ""     # `protocol: ...`: the inference protocol the methods ran under

    def summary_lines(self) -> list[str]:
        lines = [f"report: {self.index}"]
        for path in self.files:
            if path != self.index:
                lines.append(f"  {path.relative_to(self.output_dir)}")
        if self.protocol_line:
            lines.append(self.protocol_line)
        lines += self.paper_lines
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


class Caption(list):
    """A caption as segments: plain text (str) and metric labels (MetricInfo), so that each format
    prints the labels its own way (`Q<sup>AB/F</sup>` in HTML, `$Q^{AB/F}$` in LaTeX)."""

    @property
    def text(self) -> str:
        return "".join(part if isinstance(part, str) else part.label for part in self)

    def html(self):
        from markupsafe import Markup, escape

        return Markup("".join(str(escape(part)) if isinstance(part, str) else str(html_label(part.label_html))
                              for part in self))

    def tex(self) -> str:
        return "".join(tex_escape(part) if isinstance(part, str) else tex_label(part.label_tex) for part in self)


def _join(items: list) -> list:
    """[a, b, c] -> [a, ", ", b, " and ", c] (segments of a Caption)."""
    joined: list = []
    for i, item in enumerate(items):
        if i:
            joined.append(" and " if i == len(items) - 1 else ", ")
        joined.append(item)
    return joined


def table1_caption(table: Table1, demo: list[str], no_paper: str = "", protocol: str = "") -> Caption:
    """Table 1's caption (HTML and LaTeX); `protocol`: the sentence of `reports.protocols.protocol_sentence`
    (which inference protocol the methods ran under), after the conventions."""
    n = len(table.methods)
    dependent = [m for m in table.metrics if m.convention_dependent]
    official = [m for m in table.metrics if not m.convention_dependent]
    lower = [m for m in table.metrics if not m.higher_is_better]
    caption = Caption(["Mean ", *_join(table.metrics),
                       f" of the {n} method{'s' if n != 1 else ''} on {table.dataset} ({table.n_scenes} scene"
                       f"{'s' if table.n_scenes != 1 else ''}) at \u00d7{table.scale}. "])
    if dependent:
        caption += [*_join(dependent), f": convention {table.convention} "
                                       f"({CONVENTION_SHORT.get(table.convention, table.convention)})"]
    if official:
        caption += ["; " if dependent else "", *_join(official),
                    f": the official implementation{'s' if len(official) > 1 else ''}"]
    caption.append(". For each metric, the best")
    if lower:
        caption += [" (the lowest for ", *_join(lower), ", the highest otherwise)"]
    caption.append(f" of the {n} methods is in bold and the second underlined.")
    if protocol:
        caption.append(f" {protocol}")
    if table.notes:
        caption.append(" Note: " + "; ".join(table.notes) + ".")
    if no_paper:
        caption.append(f" {no_paper[0].upper()}{no_paper[1:]}.")
    if demo:
        caption.append(" " + demo_sentence(demo))
    return caption


def vs_paper_caption(comparison: PaperComparison, dataset: str) -> Caption:
    """The caption of the table beside the paper (its LaTeX form; the HTML page says the same in prose)."""
    reference = comparison.reference
    metrics = comparison.metrics
    caption = Caption([f"Mean ", *_join(metrics), f" at \u00d7{comparison.scale}: this run on {dataset} (ours), the "
                       f"paper's Table 1 on {reference.dataset} (paper; {reference.citation}) and ours - paper. "
                       f"{MISSING_SENTENCE} Kendall's tau-b between the two rankings: "])
    for i, metric in enumerate(metrics):
        caption += ["; " if i else "", metric, f" {comparison.agreement_text(metric)}"]
    caption.append(". " + comparison.comparability.text)
    return caption


MISSING_SENTENCE = ("An em dash: the paper does not have the method (e.g. a plugin), or this run did not score it.")


def canonical_methods(data: ReportData, names: list[str] | None) -> list[str]:
    """The methods of Figure 3: `names` (case-insensitive, methods of the grid), or by default those of
    `DEFAULT_METHODS` that are in the grid and have results (the first methods with results when none
    of them has)."""
    if not names:
        present = set(data.methods)
        chosen = [name for name in DEFAULT_METHODS if name in data.grid and name in present]
        return chosen or data.methods[:len(DEFAULT_METHODS)]
    try:
        return [data.grid.find(name) for name in names]
    except KeyError as exc:
        raise ReportError(exc.args[0]) from None


def _write(path: Path, text: str, written: list[Path]) -> Path:
    path.write_text(text, encoding="utf-8")
    written.append(path)
    return path


def _method_list(methods: list[str], every: list[str]) -> list[str]:
    return [f"all {len(every)} methods"] if len(methods) > 1 and set(methods) == set(every) else methods


def per_image_frame(data: ReportData) -> tuple[pd.DataFrame, list[dict]]:
    """Wide per-image scores (scale, scene, method, order, one column per metric and convention, e.g.
    psnr_paper, ssim_paper, psnr_sr, ssim_sr, then mef_ssim, qabf..., run_id) and the column
    descriptions for the HTML table."""
    dependent = [m for m in data.metrics if m.convention_dependent]
    official = [m for m in data.metrics if not m.convention_dependent]
    described = ([(m.column(c), m, c) for c in data.conventions for m in dependent]
                 + [(m.column(""), m, "") for m in official])
    columns_of = {(m.name, c): key for key, m, c in described}
    columns_of.update({(m.name, "official"): m.column("") for m in official})
    scores = data.scores.copy()
    scores["column"] = [columns_of.get((m, c)) for m, c in zip(scores.metric, scores.convention)]
    scores = scores[scores.column.notna()]
    wide = scores.pivot_table(index=["scale", "scene", "method", "run_id"], columns="column", values="value",
                              aggfunc="first").reset_index()
    value_columns = [key for key, _, _ in described]
    for column in ("scale", "scene", "method", "run_id", *value_columns):
        if column not in wide:
            wide[column] = float("nan")
    wide["order"] = wide.method.map({p.name: p.order for p in data.grid.pipelines})
    rank = {name: i for i, name in enumerate(data.grid.names)}
    wide = wide.assign(_rank=wide.method.map(rank)).sort_values(["scale", "scene", "_rank"]).drop(columns="_rank")
    wide = wide[["scale", "scene", "method", "order", *value_columns, "run_id"]].reset_index(drop=True)
    columns = [{"key": "scale", "label": "scale", "numeric": True, "digits": 0, "metric": None},
               {"key": "scene", "label": "scene", "numeric": False, "metric": None},
               {"key": "method", "label": "method", "numeric": False, "metric": None},
               {"key": "order", "label": "order", "numeric": False, "metric": None}]
    for key, metric, convention in described:
        columns.append({"key": key, "label": metric.label_html, "suffix": f" ({convention})" if convention else "",
                        "numeric": True, "digits": metric.decimals, "metric": metric.name})
    return wide, columns


def metric_descriptions(data: ReportData) -> list[dict]:
    """What each metric without a convention is (MEF-SSIM, Q^AB/F...), for the pages' explanations."""
    return [{"name": m.name, "label": m.label_html, "description": m.description or "no description recorded"}
            for m in data.metrics if not m.convention_dependent]


def build_report(database: str | Path, output_dir: str | Path, *, run_id: str | None = None,
                 profile: str | None = None, scene: str | None = None, methods: list[str] | None = None,
                 convention: str = "paper", dataset: str | None = None, n_resamples: int = N_RESAMPLES,
                 figure_scales: list[int] | None = None, gt_panel: bool = False,
                 dataset_kind: str | None = None) -> ReportResult:
    """Render the whole report of `database` into `output_dir` (created). Raises ReportError for what the
    user can fix: no database, unknown run/scene/method/convention.

    `gt_panel`: Figure 3 ends with the ground truth (the paper's has none). `dataset_kind`: the data
    set's kind when the manifests do not record it (the profile's `dataset.kind`, e.g. "sice"),
    which decides, with the demo weights, whether the comparison with the paper is more than one of
    form."""
    data = load_report_data(database, run_id=run_id, profile=profile)
    if convention not in data.conventions:
        raise ReportError(f"no PSNR/SSIM results in convention {convention!r} "
                          f"(found: {', '.join(data.conventions) or 'none'})")
    chosen_methods = canonical_methods(data, methods)
    label = dataset_label(data, dataset)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    demo = data.demo_weights
    warnings = list(data.warnings)

    paper = load_paper_reference()
    comparability = judge_comparability(paper, data, dataset_kind=dataset_kind, dataset_label=label,
                                        convention=convention)
    comparisons: list[PaperComparison] = []
    tables = []
    for scale in data.scales:
        table = build_table1(data, scale, convention, label)
        comparison = compare_with_paper(data, scale, convention, paper, comparability, table.methods)
        caption = table1_caption(table, demo, "" if comparison else no_numbers_sentence(paper, scale),
                                 protocol_sentence(data, table.methods))
        stem = f"table1_x{scale}"
        files = {"html": f"{stem}.html", "tex": f"{stem}.tex", "standalone": f"{stem}_standalone.tex",
                 "csv": f"{stem}.csv"}
        fragment = render_tex("table1.tex.j2", table=table, caption=caption.tex())
        _write(output / files["tex"], fragment, written)
        _write(output / files["standalone"], render_tex("table1_standalone.tex.j2", scale=scale, body=fragment),
               written)
        means = table.means.rename_axis("method").reset_index()
        means.insert(0, "scale", scale)
        means.to_csv(output / files["csv"], index=False)
        written.append(output / files["csv"])
        entry = {"table": table, "caption": caption.html(), "files": files, "vs_paper": None,
                 "no_paper": no_numbers_sentence(paper, scale)}
        if comparison is not None:
            comparisons.append(comparison)
            entry["vs_paper"] = write_vs_paper(comparison, label, output, written)
        tables.append(entry)

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
        figure = render_figure3(data, scale, name, chosen_methods, convention, output, gt_panel=gt_panel)
        if figure.missing:
            warnings.append(f"Figure 3 at x{scale}: no image for {', '.join(figure.missing)}")
        figures.append(figure)
        written += [figure.png, figure.pdf]
    if scene is not None and not scene_found:
        resolve_scene(data, data.scales[0], scene)  # raises with the list of close matches

    notices = [{"kind": "demo", "text": demo_sentence(demo)}] if demo else []
    notices += [{"kind": "", "text": text} for text in warnings]
    common = {"notices": notices, "database": str(data.database), "selection": data.selection,
              "profile": data.profile or data.latest_manifest.get("profile") or "?", "is_index": False,
              "paper": paper, "protocol": protocol_sentence(data)}

    for entry in tables:
        _write(output / entry["files"]["html"],
               render_html("table1.html.j2", title=f"Table 1 at x{entry['table'].scale}", table=entry["table"],
                           caption=entry["caption"], files=entry["files"], vs_paper=entry["vs_paper"],
                           no_paper=entry["no_paper"], **common), written)

    per_image, columns = per_image_frame(data)
    per_image.to_csv(output / "per_image.csv", index=False)
    written.append(output / "per_image.csv")
    conventions = [{"name": c, "description": CONVENTIONS.get(c, c)} for c in data.conventions]
    descriptions = metric_descriptions(data)
    _write(output / "per_image.html",
           render_html("per_image.html.j2", title="Per-image scores", rows=per_image.to_dict("records"),
                       columns=columns, conventions=conventions, metric_descriptions=descriptions,
                       units=[{"label": m.label_html, "unit": m.unit.strip()} for m in data.metrics if m.unit.strip()],
                       csv="per_image.csv", **common), written)
    write_viewer(data, output, convention, common, written)

    reference = data.reference
    sections, frames = [], []
    if reference is not None:
        for scale in data.scales:
            comparison = compare_with_reference(data, scale, convention, reference=reference,
                                                n_resamples=n_resamples)
            frames.append(comparison.assign(scale=scale))
            for metric in data.table1_metrics:
                rows = comparison[comparison.metric == metric.name].to_dict("records")
                sections.append({"scale": scale, "metric": metric.name, "metric_label": metric.label_html,
                                 "higher_is_better": metric.higher_is_better, "digits": metric.decimals,
                                 "rows": rows})
    stats = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["scale", *STATS_COLUMNS])
    stats = stats[["scale"] + [c for c in stats.columns if c != "scale"]]
    stats.insert(4, "difference", f"{reference} - method" if reference else "")
    stats.to_csv(output / "vs_cfanet.csv", index=False)
    written.append(output / "vs_cfanet.csv")
    if reference is None:
        why = (f"the reference method {data.grid.reference} has no results in this report"
               if data.grid.reference else "the runs' grid names no reference (proposed) method")
        stats_title = "Every method against the reference method"
    else:
        why = ""
        stats_title = f"Every method against {reference}"
    _write(output / "vs_cfanet.html",
           render_html("stats.html.j2", title=stats_title, sections=sections, reference=reference,
                       no_reference=why, n_resamples=f"{n_resamples:,}", seed=SEED,
                       n_methods=max(0, len(data.methods) - 1),
                       metric_labels=[m.label_html for m in data.table1_metrics],
                       all_higher=all(m.higher_is_better for m in data.table1_metrics),
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
            "methods": _method_list([m for m in data.methods if data.method_runs.get(m) == run.run_id],
                                    data.methods),
            "file": file, "json": json.dumps(run.manifest, indent=2, sort_keys=True, default=str)})
    _write(output / "manifest.html",
           render_html("manifest.html.j2", title="Run manifest", runs=manifest_runs, **common), written)

    files = {"viewer_html": "viewer.html", "per_image_html": "per_image.html", "per_image_csv": "per_image.csv",
             "stats_html": "vs_cfanet.html",
             "stats_csv": "vs_cfanet.csv", "runtime_html": "runtime.html", "runtime_csv": "runtime.csv",
             "manifest_html": "manifest.html"}
    index = _write(output / "index.html", render_html(
        "index.html.j2", title=f"cfanet-bench report: {common['profile']} profile", tables=tables,
        figures=[{"scale": f.scale, "scene": f.scene, "png": f.png.name, "pdf": f.pdf.name, "caption": f.caption,
                  "missing": f.missing, "methods": f.methods} for f in figures],
        files=files, manifest_files=[{"run_id": r["run_id"], "file": r["file"]} for r in manifest_runs],
        dataset=label, scales=data.scales, convention=convention,
        convention_description=CONVENTIONS.get(convention, convention), metric_descriptions=descriptions,
        reference=reference, runs=data.runs, **{**common, "is_index": True}), written)
    return ReportResult(output, index, written, warnings, demo, paper_summary_lines(comparisons, data.scales, paper),
                        comparisons, protocol_summary_line(data))


def write_vs_paper(comparison: PaperComparison, dataset: str, output: Path, written: list[Path]) -> dict:
    """Write the companion files of Table 1 beside the paper (LaTeX, standalone LaTeX, CSV, the rank
    agreement CSV, the scatter PNG); returns what the HTML templates need."""
    scale = comparison.scale
    stem = f"table1_x{scale}_vs_paper"
    files = {"tex": f"{stem}.tex", "standalone": f"{stem}_standalone.tex", "csv": f"{stem}.csv",
             "rank_csv": f"{stem}_rank.csv", "scatter": f"paper_scatter_x{scale}.png"}
    rows = comparison.rows()
    fragment = render_tex("table1_vs_paper.tex.j2", comparison=comparison, rows=rows,
                          caption=vs_paper_caption(comparison, dataset).tex())
    _write(output / files["tex"], fragment, written)
    _write(output / files["standalone"], render_tex("table1_standalone.tex.j2", scale=scale, body=fragment), written)
    comparison.csv_frame().to_csv(output / files["csv"], index=False)
    written.append(output / files["csv"])
    pd.DataFrame([{"scale": scale, "metric": a.metric, "n_methods": a.n, "kendall_tau_b": a.tau, "p_value": a.p_value}
                  for a in comparison.agreement]).to_csv(output / files["rank_csv"], index=False)
    written.append(output / files["rank_csv"])
    written.append(render_scatter(comparison, output / files["scatter"]))
    agreement = [{"label": m.label_html, "name": m.name, "n": a.n, "tau": a.tau, "p": format_p(a.p_value)}
                 for m, a in zip(comparison.metrics, comparison.agreement)]
    return {"comparison": comparison, "rows": rows, "files": files, "agreement": agreement,
            "missing_sentence": MISSING_SENTENCE}
