"""Reports: every artefact rendered from a small fixture results database made here.

The fixture (`build_fixture`) writes what a runner writes, through `pipelines.store.ResultsStore`
and in the runner's stage order: two scales, four scenes (two with hostile names), three runs (the
paper's grid of methods; a later `run RCAN+MGFF --force` with other numbers; a killed run that must
be ignored), every metric of `cfanet.metrics.registry` (Q^AB/F included), the manifests' `grid` and
`metrics` as the runner records them, stage timings with known seconds, and tiny PNG images. Other
tests build smaller databases: fewer methods, a plugin-like method, an extra metric, no reference,
and an old database whose manifests record neither grid nor metrics.
"""

from __future__ import annotations

import argparse
import hashlib
import html.parser
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from statistics import fmean

import numpy as np
import pytest

from cfanet.metrics.registry import METRICS
from reports.data import ReportError

# The fixture's grid: the paper's components (test data; the reports read the grid from the manifest).
SR_MODELS = ("DBPN", "RCAN", "SRFBN", "SwinIR")
MEF_METHODS = ("MGFF", "Fast-SPD-MEF", "MEF-Net", "U2Fusion")
JOINT_MODELS = ("CF-Net", "CFANet")


def grid_of(sr, mef, joint, reference="CFANet", extra=()) -> dict:
    """A manifest's `grid` as the runner records it, in Table 1 order (SR+MEF, MEF+SR, joint, extra)."""
    pipelines = [{"name": f"{s}+{m}", "order": "SR+MEF", "sr": s, "mef": m, "joint": None} for s in sr for m in mef]
    pipelines += [{"name": f"{m}+{s}", "order": "MEF+SR", "sr": s, "mef": m, "joint": None} for m in mef for s in sr]
    pipelines += [{"name": j, "order": "joint", "sr": None, "mef": None, "joint": j} for j in joint]
    pipelines += list(extra)
    components = {**{s: {"kind": "sr"} for s in sr}, **{m: {"kind": "mef"} for m in mef},
                  **{j: {"kind": "joint"} for j in joint}}
    for entry in extra:
        for kind in ("sr", "mef", "joint"):
            if entry.get(kind):
                components.setdefault(entry[kind], {"kind": kind})
    return {"pipelines": pipelines, "components": components, "reference": reference}


GRID = grid_of(SR_MODELS, MEF_METHODS, JOINT_MODELS)
SPECS = {entry["name"]: entry for entry in GRID["pipelines"]}
PIPELINES = list(SPECS)
METRIC_DESCRIPTORS = [metric.describe() for metric in METRICS]
TABLE1 = [metric.name for metric in METRICS if metric.in_table1]       # the paper's PSNR, SSIM, MEF-SSIM
OFFICIAL = [metric.name for metric in METRICS if not metric.convention_dependent]
DECIMALS = {metric.name: metric.decimals for metric in METRICS}
SCALES = (2, 4)
SCENES = ("alpha", "<b>x</b>", "../evil", "beta")
OFFSETS = (-0.3, 0.1, 0.2, 0.0)  # per-scene offsets summing to zero: each method's mean is its design value
HR = 16
SR_SECONDS = {name: 0.01 * (i + 1) for i, name in enumerate(SR_MODELS)}
MEF_HR_SECONDS = {name: 0.1 * (i + 1) for i, name in enumerate(MEF_METHODS)}
MEF_LR_SECONDS = {name: 0.02 * (i + 1) for i, name in enumerate(MEF_METHODS)}
JOINT_SECONDS = {"CF-Net": 0.3, "CFANet": 0.4}


def design() -> dict[str, dict[str, float]]:
    """Mean scores per method in convention `paper` (and MEF-SSIM, Q^AB/F), with ties on purpose."""
    means = {name: {"psnr": 15.0 + 0.05 * i, "ssim": 0.60 + 0.003 * i, "mef_ssim": 0.85 + 0.001 * i,
                    "qabf": 0.40 + 0.002 * i} for i, name in enumerate(PIPELINES)}
    means["CFANet"].update(psnr=21.49, ssim=0.816841, mef_ssim=0.9337)
    means["CF-Net"].update(psnr=21.49, ssim=0.8050, mef_ssim=0.9332)       # PSNR: a tie for the best
    means["RCAN+MGFF"]["psnr"] = 20.0                                        # PSNR: second
    means["SRFBN+Fast-SPD-MEF"]["ssim"] = 0.816849                           # SSIM: prints 0.8168 too: tie
    means["MGFF+RCAN"]["ssim"] = means["U2Fusion+SwinIR"]["ssim"] = 0.8100   # SSIM: tie for second
    means["DBPN+U2Fusion"]["mef_ssim"] = 0.95                                # MEF-SSIM: best, block 1
    means["MEF-Net+SwinIR"]["mef_ssim"] = 0.94                               # MEF-SSIM: second, block 2
    return means


def per_scene(mean: float, metric: str, method: str, k: int) -> float:
    if method in ("CF-Net", "CFANet") and metric == "psnr":
        return mean + OFFSETS[k]  # identical per-scene PSNR: all paired differences are zero
    return mean + OFFSETS[k] * (1.0 if metric == "psnr" else 0.01)


def _png(path: Path, value: float, size: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(int(hashlib.sha256(str(path).encode()).hexdigest()[:8], 16))
    pixels = np.clip(value + 0.2 * rng.random((size, size, 3)), 0, 1)
    Image.fromarray((pixels * 255).round().astype(np.uint8)).save(path)


def scene_stages(specs: list[dict], over: str, under: str) -> list[tuple[str, str, str, list[str]]]:
    """One scene's stages in the older runners' execution order, each once: (key, method, kind, inputs).
    SR+MEF: S(over), S(under), M(S(over), S(under)); MEF+SR: M(over, under), S(fused); joint: J(over, under)."""
    stages: dict[str, tuple] = {}

    def stage(method: str, kind: str, inputs: list[str]) -> str:
        key = hashlib.sha256(json.dumps([method, inputs]).encode()).hexdigest()
        stages.setdefault(key, (key, method, kind, inputs))
        return key

    for spec in specs:
        if spec["order"] == "SR+MEF":
            stage(spec["mef"], "mef", [stage(spec["sr"], "sr", [over]), stage(spec["sr"], "sr", [under])])
        elif spec["order"] == "MEF+SR":
            stage(spec["sr"], "sr", [stage(spec["mef"], "mef", [over, under])])
        else:
            stage(spec["joint"], "joint", [over, under])
    return list(stages.values())


def _record_run(store, pipelines, scores, seconds_factor, cached, manifest, finish=True, specs=SPECS,
                scales=SCALES, scenes=SCENES, legacy=False):
    """One run as the runner records it: each stage with its scale and inputs, the stages of all scenes
    interleaved level by level (as a batching runner records them: stages on the LR images first,
    then stages on their outputs, in reverse here to show that the order does not matter). `legacy`:
    as older runners did, without scale and inputs, per scale, per scene, in execution order."""
    run_id = store.start_run("demo", manifest)
    rows = []
    levels: dict[bool, list] = {True: [], False: []}
    for scale in scales:
        for scene in scenes:
            over, under = f"over-{scale}-{scene}", f"under-{scale}-{scene}"
            for key, method, kind, inputs in scene_stages([specs[name] for name in pipelines], over, under):
                lr = all(i in (over, under) for i in inputs)
                base = {"sr": SR_SECONDS, "joint": JOINT_SECONDS,
                        "mef": MEF_LR_SECONDS if lr else MEF_HR_SECONDS}[kind].get(method, 0.05)
                timing = (run_id, key, method, scene, 0.0 if cached else base * seconds_factor)
                if legacy:
                    store.record_timing(*timing, cached=cached)
                else:
                    levels[lr].append((timing, scale, inputs))
    for timing, scale, inputs in reversed(levels[True] + levels[False]):
        store.record_timing(*timing, cached=cached, scale=scale, inputs=inputs)
    for scale in scales:
        for scene in scenes:
            for name in pipelines:
                for metric, value in scores[name][scale][scene].items():
                    rows.append((f"x{scale}/{scene}", name, metric[0], metric[1], value))
    store.record_results(run_id, rows)
    if finish:
        store.finish_run(run_id, {**manifest, "pipelines": list(pipelines), "stages_total": 1, "stages_computed": 1,
                                  "compute_seconds": 1.0, "wall_seconds": 2.0})
    return run_id


def fixture_scores(names, means) -> dict:
    """Per-scene scores {name: {scale: {scene: {(metric, convention): value}}}} of every metric."""
    scores = {name: {scale: {scene: {} for scene in SCENES} for scale in SCALES} for name in names}
    for name in names:
        for scale in SCALES:
            for k, scene in enumerate(SCENES):
                values = scores[name][scale][scene]
                for metric in means[name]:
                    value = per_scene(means[name][metric], metric, name, k) - (3.0 if metric == "psnr" and scale == 4 else 0)
                    values[(metric, "official" if metric in OFFICIAL else "paper")] = value
                values[("psnr", "sr")] = values[("psnr", "paper")] + 2.0
                values[("ssim", "sr")] = values[("ssim", "paper")] + 0.05
    return scores


MANIFEST = {"profile": "demo", "git_commit": "abc123", "device": "cpu", "device_name": "fixture",
            "packages": {"numpy": "1"}, "config_source": "<fixture>", "config_sha256": "c0ffee",
            "demo_weights": ["CFANet", "RCAN"], "grid": GRID, "metrics": METRIC_DESCRIPTORS}
DEEP = (*SR_MODELS, "MEF-Net", "U2Fusion", "CF-Net", "CFANet")


def build_fixture(root: Path, manifest: dict | None = None) -> dict:
    """Results folder at `root` (results.sqlite + images); returns what the tests check against."""
    from pipelines.store import ResultsStore

    scores = fixture_scores(PIPELINES, design())
    for scale in SCALES:  # the best PSNR in convention `sr` only
        for scene in SCENES:
            scores["SwinIR+MGFF"][scale][scene][("psnr", "sr")] = 40.0
    rerun = {"RCAN+MGFF": {scale: {scene: {**values, ("psnr", "paper"): 25.0 + OFFSETS[k]}
                                   for k, (scene, values) in enumerate(scores["RCAN+MGFF"][scale].items())}
                           for scale in SCALES}}
    weights = {f"{m}.x{s}": {"path": f"/w/{m}.pt", "sha256": f"w-{m}", "source": "demo" if m in ("RCAN", "CFANet")
                             else "configured", "size": "small", "details": {}}
               for m in DEEP for s in SCALES}
    manifest = {**MANIFEST, **(manifest or {}), "weights": weights,
                "parameters": {f"{m}.x{s}": 1000 * (i + 1) for i, m in enumerate(DEEP) for s in SCALES}}
    database = root / "results.sqlite"
    with ResultsStore(database) as store:
        first = _record_run(store, PIPELINES, scores, 1.0, False, manifest)
        second = _record_run(store, ["RCAN+MGFF"], rerun, 2.0, False, {**manifest, "parameters": {}})
        killed = _record_run(store, ["CFANet"], {"CFANet": {s: {sc: {("psnr", "paper"): 99.0} for sc in SCENES}
                                                            for s in SCALES}},
                             1.0, False, manifest, finish=False)
    write_images(root, PIPELINES)
    return {"database": database, "scores": scores, "rerun": rerun, "runs": (first, second, killed)}


def write_images(root: Path, names) -> None:
    for scale in SCALES:
        for scene in SCENES:
            if scene == "../evil":  # a naive join would read these: the report must not
                _png(root / "images" / f"x{scale}" / "evil.png", 0.9, HR)
                continue
            for role, size in (("over", HR // scale), ("under", HR // scale), ("gt", HR), ("gt_over", HR),
                               ("gt_under", HR)):
                _png(root / "images" / f"x{scale}" / "_scene" / role / f"{scene}.png", 0.4, size)
            for name in names:
                _png(root / "images" / f"x{scale}" / name / f"{scene}.png", 0.3, HR)


def expected_marks(scores: dict, scale: int, metric: str, convention: str) -> tuple[set, set]:
    """(bold, underlined) methods computed from the fixture's numbers, independently of reports."""
    key = (metric, "official" if metric in OFFICIAL else convention)
    shown = {name: round(fmean(scores[name][scale][scene][key] for scene in SCENES), DECIMALS[metric])
             for name in PIPELINES}
    levels = sorted(set(shown.values()), reverse=True)
    return ({n for n, v in shown.items() if v == levels[0]}, {n for n, v in shown.items() if v == levels[1]})


def selected_scores(fixture) -> dict:
    """The fixture's scores as the default selection sees them (RCAN+MGFF from the later run)."""
    return {**fixture["scores"], **fixture["rerun"]}


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    return build_fixture(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def report(fixture, tmp_path_factory):
    from reports.build import build_report

    root = fixture["database"].parent
    before = _tree(root)
    output = tmp_path_factory.mktemp("out") / "report"
    result = build_report(fixture["database"], output, profile="demo", dataset="the fixture scenes",
                          n_resamples=2000)
    return {"result": result, "output": output, "results_before": before, "root": root}


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


class _Cells(html.parser.HTMLParser):
    """Table 1 cells of an HTML page: (scale, method, metric) -> (mark, text)."""

    def __init__(self):
        super().__init__()
        self.cells, self._scale, self._current, self._text = {}, None, None, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "table1" in (attrs.get("class") or ""):
            self._scale = int(attrs["data-scale"])
        if tag == "td" and "data-method" in attrs and self._scale is not None:
            self._current = (self._scale, attrs["data-method"], attrs["data-metric"], attrs.get("data-mark", ""))
            self._text = []
        if self._current and tag in ("strong", "u"):
            self._text.append(f"<{tag}>")

    def handle_data(self, data):
        if self._current:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._current:
            scale, method, metric, mark = self._current
            self.cells[(scale, method, metric)] = (mark, "".join(self._text))
            self._current = None
        if tag == "table":
            self._scale = None


# -- Table 1 ----------------------------------------------------------------------------------

def test_every_artefact_is_written_inside_the_output_folder(report):
    output = report["output"]
    names = {p.name for p in report["result"].files}
    for scale in SCALES:
        assert {f"table1_x{scale}.html", f"table1_x{scale}.tex", f"table1_x{scale}_standalone.tex",
                f"table1_x{scale}.csv"} <= names
        assert any(re.fullmatch(rf"figure3_x{scale}_.+\.png", n) for n in names)
        assert any(re.fullmatch(rf"figure3_x{scale}_.+\.pdf", n) for n in names)
    assert {"index.html", "per_image.html", "per_image.csv", "vs_cfanet.html", "vs_cfanet.csv", "runtime.html",
            "runtime.csv", "manifest.html"} <= names
    # beside the paper's Table 1 at its scale only (tests/test_paper_reference.py checks the contents)
    from reports.paper_reference import load_paper_reference

    paper_scale = load_paper_reference().scale
    for scale in SCALES:
        beside = {f"table1_x{scale}_vs_paper.tex", f"table1_x{scale}_vs_paper_standalone.tex",
                  f"table1_x{scale}_vs_paper.csv", f"table1_x{scale}_vs_paper_rank.csv", f"paper_scatter_x{scale}.png"}
        assert (beside <= names) if scale == paper_scale else not (beside & names)
    for path in report["result"].files:
        assert path.resolve().is_relative_to(output.resolve()) and path.stat().st_size > 0
    # the results folder (database, images) is only read
    assert _tree(report["root"]) == report["results_before"]


def test_table1_html_marks_match_the_numbers(fixture, report):
    scores = selected_scores(fixture)
    for scale in SCALES:
        for page in ("index.html", f"table1_x{scale}.html"):
            parser = _Cells()
            parser.feed((report["output"] / page).read_text())
            cells = {k[1:]: v for k, v in parser.cells.items() if k[0] == scale}
            assert len(cells) == len(PIPELINES) * len(TABLE1)
            for metric in TABLE1:
                bold, under = expected_marks(scores, scale, metric, "paper")
                for name in PIPELINES:
                    mark, text = cells[(name, metric)]
                    assert mark == ("best" if name in bold else "second" if name in under else ""), (name, metric)
                    assert ("<strong>" in text) == (name in bold) and ("<u>" in text) == (name in under)
                    assert text.endswith(" dB") == (metric == "psnr")
    # the design's intent, spelled out: the later run's RCAN+MGFF is best; the joint networks tie second
    bold, under = expected_marks(scores, 2, "psnr", "paper")
    assert bold == {"RCAN+MGFF"} and under == {"CF-Net", "CFANet"}
    bold, under = expected_marks(scores, 2, "ssim", "paper")
    assert bold == {"CFANet", "SRFBN+Fast-SPD-MEF"} and under == {"MGFF+RCAN", "U2Fusion+SwinIR"}


def test_table1_selected_run_and_convention(fixture, tmp_path):
    from reports.data import load_report_data
    from reports.table1 import build_table1

    first = fixture["runs"][0]
    data = load_report_data(fixture["database"], run_id=first, profile="demo")
    table = build_table1(data, 2, "paper", "fixture")
    bold, under = expected_marks(fixture["scores"], 2, "psnr", "paper")
    assert bold == {"CF-Net", "CFANet"} and under == {"RCAN+MGFF"}  # a tie for first leaves second place
    assert set(table.marks.index[table.marks.psnr == "best"]) == bold
    assert set(table.marks.index[table.marks.psnr == "second"]) == under
    sr = build_table1(data, 2, "sr", "fixture")
    bold, under = expected_marks(fixture["scores"], 2, "psnr", "sr")
    assert bold == {"SwinIR+MGFF"} and set(sr.marks.index[sr.marks.psnr == "best"]) == bold
    assert set(sr.marks.index[sr.marks.psnr == "second"]) == under
    # the killed run's absurd CFANet values never appear by default
    default = load_report_data(fixture["database"], profile="demo")
    assert default.scores.value.max() < 99 and fixture["runs"][2] not in set(default.scores.run_id)
    assert default.method_runs["RCAN+MGFF"] == fixture["runs"][1]
    assert default.method_runs["CFANet"] == first
    assert any("2 runs" in w for w in default.warnings)


def test_table1_layout_and_caption(report):
    page = (report["output"] / "table1_x2.html").read_text()
    first, second, joint = (page.index("Super Resolution + Image Fusion"),
                            page.index("Image Fusion + Super Resolution"), page.index("Joint MEF and SR"))
    assert first < second < joint < page.index('data-method="CFANet"')
    block1 = page[first:second]
    assert [m for m in re.findall(r'class="group">([^<]+)<', block1)] == list(MEF_METHODS)
    assert re.findall(r'class="row" scope="row">([^<]+)<', block1) == list(SR_MODELS)
    block2 = page[second:joint]
    assert [m for m in re.findall(r'class="group">([^<]+)<', block2)] == list(SR_MODELS)
    assert re.findall(r'class="row" scope="row">([^<]+)<', block2) == list(MEF_METHODS)
    assert "the fixture scenes (4 scenes) at \u00d72" in page and "convention paper" in page
    assert "Demo weights: CFANet, RCAN ran with demo weights" in page


def _latex_cells(tex: str) -> dict[tuple[str, str], str]:
    """(method, metric) -> cell source, from the rows of the booktabs table."""
    cells = {}
    block = None
    for line in tex.splitlines():
        if "Super Resolution + Image Fusion" in line:
            block = "sr+mef"
        elif "Image Fusion + Super Resolution" in line:
            block = "mef+sr"
        elif "Joint MEF and SR" in line:
            block = "joint"
        parts = [p.strip() for p in line.rstrip("\\ ").split(" & ")]
        label = parts[0]
        if block == "sr+mef" and label in SR_MODELS:
            methods = [f"{label}+{mef}" for mef in MEF_METHODS]
        elif block == "mef+sr" and label in MEF_METHODS:
            methods = [f"{label}+{sr}" for sr in SR_MODELS]
        elif block == "joint" and label in ("CF-Net", "CFANet"):
            methods = [label]
        else:
            continue
        k = len(TABLE1)
        values = parts[1:1 + k * len(methods)]
        for i, method in enumerate(methods):
            for j, metric in enumerate(TABLE1):
                cells[(method, metric)] = values[k * i + j]
    return cells


def test_table1_latex_marks_match_the_numbers(fixture, report):
    scores = selected_scores(fixture)
    for scale in SCALES:
        tex = (report["output"] / f"table1_x{scale}.tex").read_text()
        assert "\\toprule" in tex and "\\bottomrule" in tex and "\\cmidrule(lr){2-4}" in tex
        cells = _latex_cells(tex)
        assert len(cells) == len(PIPELINES) * len(TABLE1)
        for metric in TABLE1:
            bold, under = expected_marks(scores, scale, metric, "paper")
            for name in PIPELINES:
                cell = cells[(name, metric)]
                assert cell.startswith("\\textbf{") == (name in bold), (name, metric, cell)
                assert cell.startswith("\\underline{") == (name in under), (name, metric, cell)
                assert ("\\,dB" in cell) == (metric == "psnr")
        assert "Demo weights: CFANet, RCAN" in tex and "$\\times$" in tex


def test_latex_compiles_with_pdflatex(report, tmp_path):
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.skip("pdflatex not installed (Debian: texlive-latex-base texlive-latex-recommended)")
    shutil.copy(report["output"] / "table1_x2_standalone.tex", tmp_path / "table.tex")
    done = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "table.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (tmp_path / "table.pdf").stat().st_size > 1000


# -- Figure 3 ---------------------------------------------------------------------------------

def test_figure3_png_and_pdf(report):
    """Default: the paper's selection, panels lettered as in the paper, no ground truth panel."""
    from PIL import Image

    pngs = sorted(report["output"].glob("figure3_x2_*.png"))
    assert len(pngs) == 1
    with Image.open(pngs[0]) as image:
        assert image.width > 1000 and image.height > 300
        assert np.asarray(image.convert("L")).std() > 5  # not blank
    assert pngs[0].with_suffix(".pdf").read_bytes().startswith(b"%PDF")
    index = (report["output"] / "index.html").read_text()
    assert f'src="{pngs[0].name}"' in index
    # default scene: the first (sorted) with all its images; `../evil` has none and sorts first
    assert "Scene &lt;b&gt;x&lt;/b&gt; at x2" in index
    from reports.paper_reference import load_paper_reference

    paper = load_paper_reference()
    caption = re.search(r"Scene &lt;b&gt;x&lt;/b&gt; at x2: (.*?)</figcaption>", index).group(1)
    listed = re.findall(r"\(([a-z]+)\) ([^,]+?)(?=, \(|\. )", caption.split("): ", 1)[1])
    assert [name.removesuffix(" (ours)") for _, name in listed] == list(paper.figure3_methods)
    assert [letter for letter, _ in listed] == [chr(ord("c") + i) for i in range(len(listed))]
    assert "ground truth" not in caption


def test_figure3_any_scene_and_hostile_names(fixture, tmp_path):
    from reports.data import load_report_data
    from reports.figure3 import DEFAULT_METHODS, image_path, render_figure3, resolve_scene

    data = load_report_data(fixture["database"], profile="demo")
    assert resolve_scene(data, 4, "x4/beta") == "beta" and resolve_scene(data, 4, "alpha") == "alpha"
    with pytest.raises(ReportError, match="did you mean alpha"):
        resolve_scene(data, 2, "alpah")
    assert image_path(data.images_dir, 2, "RCAN+MGFF", "../evil") is None        # decoy never read
    assert image_path(data.images_dir, 2, "RCAN+MGFF", "../../x2/evil") is None
    assert image_path(data.images_dir, 2, "RCAN+MGFF", "<b>x</b>") is not None
    out = tmp_path / "fig"
    figure = render_figure3(data, 2, "../evil", list(DEFAULT_METHODS), "paper", out)
    assert set(figure.missing) >= set(DEFAULT_METHODS)
    assert [p.parent for p in out.iterdir()] == [out, out] and ".." not in figure.png.name
    figure = render_figure3(data, 4, "beta", ["CFANet", "RCAN+MGFF"], "paper", out, crop=(2, 3, 4, 4))
    assert figure.crop == (2, 3, 4, 4) and not figure.missing
    assert figure.psnr["RCAN+MGFF"] == pytest.approx(25.0 + OFFSETS[SCENES.index("beta")])  # the later run


# -- per-image, statistics, runtime, manifest ------------------------------------------------

def test_per_image_csv_and_sortable_html(fixture, report):
    import pandas as pd

    frame = pd.read_csv(report["output"] / "per_image.csv", keep_default_na=False)
    assert len(frame) == len(SCALES) * len(SCENES) * len(PIPELINES)
    # every metric of the registry: the convention-dependent ones per convention, the others once
    expected = [f"{m.name}_{c}" for c in ("paper", "sr") for m in METRICS if m.convention_dependent] + OFFICIAL
    value_columns = [c for c in frame.columns if c not in ("scale", "scene", "method", "order", "run_id")]
    assert value_columns == expected and "qabf" in value_columns
    row = frame[(frame.scale == 2) & (frame.scene == "<b>x</b>") & (frame.method == "DBPN+MGFF")].iloc[0]
    assert row.psnr_paper == pytest.approx(fixture["scores"]["DBPN+MGFF"][2]["<b>x</b>"][("psnr", "paper")])
    assert row.qabf == pytest.approx(fixture["scores"]["DBPN+MGFF"][2]["<b>x</b>"][("qabf", "official")])
    assert row.order == "SR+MEF" and frame[frame.method == "CFANet"].order.unique().tolist() == ["joint"]
    page = (report["output"] / "per_image.html").read_text()
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page and 'class="grid sortable"' in page
    assert "Demo weights:" in page
    assert 'data-metric="qabf">Q<sup>AB/F</sup></th>' in page and "MEF-SSIM: official MATLAB" in page


def test_table1_shows_the_table1_metrics_only(report):
    """Q^AB/F is scored and on the per-image page, but off in Table 1 by default (the paper's metrics)."""
    assert "qabf" not in TABLE1 and len(TABLE1) < len(METRICS)
    for scale in SCALES:
        page = (report["output"] / f"table1_x{scale}.html").read_text()
        assert 'data-metric="qabf"' not in page and "AB/F" not in page
        assert re.findall(r'<th class="metric" data-metric="([^"]+)"', page)[:len(TABLE1)] == TABLE1
        tex = (report["output"] / f"table1_x{scale}.tex").read_text()
        assert "AB/F" not in tex
        header = next(line for line in tex.splitlines() if line.startswith("Method"))
        assert header.startswith("Method & PSNR & SSIM & MEF-SSIM")
        import pandas as pd

        csv = pd.read_csv(report["output"] / f"table1_x{scale}.csv")
        assert list(csv.columns) == ["scale", "method", *TABLE1, "n_scenes"] and list(csv.method) == PIPELINES


def test_vs_cfanet_statistics(report):
    import pandas as pd

    frame = pd.read_csv(report["output"] / "vs_cfanet.csv", keep_default_na=False)
    assert len(frame) == len(SCALES) * len(TABLE1) * (len(PIPELINES) - 1) and "CFANet" not in set(frame.method)
    assert set(frame.metric) == set(TABLE1) and set(frame.difference) == {"CFANet - method"}
    tie = frame[(frame.scale == 2) & (frame.metric == "psnr") & (frame.method == "CF-Net")].iloc[0]
    assert tie.mean_diff == 0 and tie.ci_low == 0 and tie.ci_high == 0 and tie.p_value == 1.0
    assert "all differences are zero" in tie.note
    other = frame[(frame.scale == 2) & (frame.metric == "psnr") & (frame.method == "DBPN+MGFF")].iloc[0]
    assert other.mean_diff == pytest.approx(21.49 - 15.0) and other.ci_low <= other.mean_diff <= other.ci_high
    assert other.n == 4 and "cannot fall below" in other.note and other.p_value == pytest.approx(0.125)
    assert (frame.p_holm.astype(float) >= frame.p_value.astype(float) - 1e-12).all()
    page = (report["output"] / "vs_cfanet.html").read_text()
    assert "positive means CFANet scores higher" in page


def test_runtime_attribution_and_parameters(fixture, report):
    import pandas as pd

    frame = pd.read_csv(report["output"] / "runtime.csv").set_index(["scale", "method"])
    expected = {
        # latest computation of each stage: the rerun doubled RCAN(over), RCAN(under), MGFF(RCAN's)
        "RCAN+MGFF": 2 * 0.02 * 2 + 0.1 * 2,
        "RCAN+Fast-SPD-MEF": 2 * 0.02 * 2 + 0.2,  # shares the recomputed RCAN stages
        "DBPN+U2Fusion": 2 * 0.01 + 0.4,
        "MGFF+DBPN": 0.02 + 0.01,
        "U2Fusion+SwinIR": 0.08 + 0.04,
        "CFANet": 0.4,
        "CF-Net": 0.3,
    }
    for scale in SCALES:
        for name, seconds in expected.items():
            assert frame.at[(scale, name), "seconds_per_scene"] == pytest.approx(seconds), name
            assert frame.at[(scale, name), "scenes_timed"] == len(SCENES)
    # parameters: SR models 1000..4000, MEF-Net 5000, U2Fusion 6000, CF-Net 7000, CFANet 8000; classical 0.
    # RCAN+MGFF's run recorded none: taken from the earlier run with the same weights.
    assert frame.at[(2, "RCAN+MGFF"), "parameters"] == 2000
    assert frame.at[(2, "SwinIR+U2Fusion"), "parameters"] == 4000 + 6000
    assert frame.at[(2, "CFANet"), "parameters"] == 8000
    assert frame.at[(2, "MGFF+DBPN"), "parameters"] == 1000
    assert "MGFF: 0" in frame.at[(2, "MGFF+DBPN"), "components"]
    page = (report["output"] / "runtime.html").read_text()
    assert "cpu (fixture)" in page and "seconds / scene" in page


def test_manifest_page_and_index_links(fixture, report):
    output = report["output"]
    manifest = (output / "manifest.html").read_text()
    first, second, _ = fixture["runs"]
    assert first in manifest and second in manifest and "w-RCAN" in manifest and "abc123" in manifest
    files = sorted(output.glob("manifest_*.json"))
    assert len(files) == 2 and json.loads(files[0].read_text())["manifest"]["git_commit"] == "abc123"
    index = (output / "index.html").read_text()
    for target in re.findall(r'(?:href|src)="([^"#]+)"', index):
        assert "://" not in target and (output / target).is_file(), target
    for page in output.glob("*.html"):
        text = page.read_text()
        assert "Demo weights: CFANet, RCAN ran with demo weights" in text, page.name
        assert "<b>x</b>" not in text and "http://" not in text and "https://" not in text


# -- the grid and the metrics come from the manifests ------------------------------------------

def build_small(root: Path, grid: dict, *, metrics: list[dict] | None = None, extra_scores=None,
                manifest: dict | None = None, specs: dict | None = None, legacy: bool = False) -> Path:
    """A one-run database of `grid`'s methods (means by position, every registry metric plus
    `extra_scores`: {metric: (convention, value of method i)})."""
    from pipelines.store import ResultsStore

    names = [entry["name"] for entry in grid["pipelines"]] if grid else list(specs)
    means = {name: {"psnr": 15.0 + i, "ssim": 0.6 + 0.01 * i, "mef_ssim": 0.8 + 0.01 * i, "qabf": 0.4 + 0.01 * i}
             for i, name in enumerate(names)}
    scores = fixture_scores(names, means)
    for metric, (convention, value) in (extra_scores or {}).items():
        for i, name in enumerate(names):
            for scale in SCALES:
                for scene in SCENES:
                    scores[name][scale][scene][(metric, convention)] = value(i)
    record = {**MANIFEST, "grid": grid, "metrics": METRIC_DESCRIPTORS if metrics is None else metrics,
              "demo_weights": [], **(manifest or {})}
    record = {key: value for key, value in record.items() if value is not None}
    database = root / "results.sqlite"
    specs = specs or {entry["name"]: entry for entry in grid["pipelines"]}
    with ResultsStore(database) as store:
        if legacy:  # the last method in a run of its own
            _record_run(store, names[:-1], scores, 1.0, False, record, specs=specs, legacy=True)
            _record_run(store, names[-1:], scores, 1.0, False, record, specs=specs, legacy=True)
        else:
            _record_run(store, names, scores, 1.0, False, record, specs=specs)
    write_images(root, names)
    return database


def _table_rows(page: str) -> dict[str, list[str]]:
    """Table 1 of one HTML page: block title -> row labels (and "groups:<title>" -> column groups)."""
    found = {}
    for block in re.findall(r'<tbody class="block[^"]*">(.*?)</tbody>', page, re.S):
        title = re.search(r'class="block-title">([^<]+)<', block).group(1)
        found[title] = re.findall(r'class="row" scope="row">([^<]+)<', block)
        found[f"groups:{title}"] = re.findall(r'class="group">([^<]+)<', block)
    return found


def test_a_grid_with_fewer_methods_gives_just_those_rows(tmp_path):
    import pandas as pd

    from reports.build import build_report
    from reports.figure3 import DEFAULT_METHODS

    grid = grid_of(("RCAN",), ("MGFF", "MEF-Net"), ("CFANet",))
    names = [entry["name"] for entry in grid["pipelines"]]
    database = build_small(tmp_path, grid)
    result = build_report(database, tmp_path / "out", n_resamples=200)
    out = tmp_path / "out"
    page = (out / "table1_x2.html").read_text()
    rows = _table_rows(page)
    assert rows["Super Resolution + Image Fusion"] == ["RCAN"]
    assert rows["groups:Super Resolution + Image Fusion"] == ["MGFF", "MEF-Net"]
    assert rows["Image Fusion + Super Resolution"] == ["MGFF", "MEF-Net"]
    assert rows["groups:Image Fusion + Super Resolution"] == ["RCAN"]
    assert rows["Joint MEF and SR"] == ["CFANet"] and "Other methods" not in rows
    parser = _Cells()
    parser.feed(page)
    assert {key[1] for key in parser.cells} == set(names) and len(parser.cells) == len(names) * len(TABLE1)
    assert f"of the {len(names)} methods" in page
    # every page follows the grid: statistics, runtime, Figure 3's default methods
    stats = pd.read_csv(out / "vs_cfanet.csv")
    assert len(stats) == len(SCALES) * len(TABLE1) * (len(names) - 1)
    runtime = pd.read_csv(out / "runtime.csv")
    assert runtime.method.tolist() == names * len(SCALES)
    assert runtime.set_index(["scale", "method"]).at[(2, "RCAN+MGFF"), "seconds_per_scene"] == pytest.approx(
        2 * SR_SECONDS["RCAN"] + MEF_HR_SECONDS["MGFF"])
    index = (out / "index.html").read_text()
    shown = [name for name in DEFAULT_METHODS if name in names]
    assert shown and f"the outputs of {len(shown)} methods" in index
    assert not any("no image" in w for w in result.warnings)


def test_a_plugin_method_in_the_grid_shows_everywhere(tmp_path):
    """Methods the paper never had (an SR model "EDSR", a joint "MyJoint", the reference) take their
    places in Table 1, the statistics, the runtime table and Figure 3 (--methods)."""
    import pandas as pd

    from reports.build import build_report

    grid = grid_of(("RCAN", "EDSR"), ("MGFF",), ("CFANet", "MyJoint"), reference="MyJoint")
    grid["components"]["MyJoint"]["learned"] = False
    names = [entry["name"] for entry in grid["pipelines"]]
    database = build_small(tmp_path, grid)
    build_report(database, tmp_path / "out", methods=["edsr+mgff", "MyJoint"], n_resamples=200)
    out = tmp_path / "out"
    rows = _table_rows((out / "table1_x4.html").read_text())
    assert rows["Super Resolution + Image Fusion"] == ["RCAN", "EDSR"]
    assert rows["groups:Image Fusion + Super Resolution"] == ["RCAN", "EDSR"]
    assert rows["Joint MEF and SR"] == ["CFANet", "MyJoint"]
    tex = (out / "table1_x4.tex").read_text()
    assert re.search(r"^EDSR & ", tex, re.M) and re.search(r"^MyJoint & ", tex, re.M)
    stats = pd.read_csv(out / "vs_cfanet.csv")
    assert "MyJoint" not in set(stats.method) and set(stats.method) == set(names) - {"MyJoint"}
    assert set(stats.difference) == {"MyJoint - method"}
    assert "positive means MyJoint scores higher" in (out / "vs_cfanet.html").read_text()
    runtime = pd.read_csv(out / "runtime.csv").set_index(["scale", "method"])
    assert runtime.at[(2, "EDSR+MGFF"), "seconds_per_scene"] == pytest.approx(2 * 0.05 + MEF_HR_SECONDS["MGFF"])
    assert runtime.at[(2, "MyJoint"), "parameters"] == 0      # "learned": false in the grid
    index = (out / "index.html").read_text()
    assert "the outputs of 2 methods" in index and "Every method against MyJoint" in index
    per_image = pd.read_csv(out / "per_image.csv")
    assert set(per_image.method) == set(names)


def test_without_the_reference_the_statistics_page_says_so(tmp_path):
    import pandas as pd

    from reports.build import build_report

    for reference, says in ((None, "names no reference"), ("CFANet", "CFANet has no results")):
        grid = grid_of(("RCAN",), ("MGFF",), (), reference=reference)
        root = tmp_path / str(reference)
        root.mkdir()
        result = build_report(build_small(root, grid), root / "out", n_resamples=200)
        page = (root / "out" / "vs_cfanet.html").read_text()
        assert "No comparison" in page and says in page
        csv = pd.read_csv(root / "out" / "vs_cfanet.csv")
        assert csv.empty and {"scale", "metric", "method", "difference", "mean_diff"} <= set(csv.columns)
        assert (root / "out" / "table1_x2.html").is_file()
        assert (reference is None) or any("reference method CFANet has no results" in w for w in result.warnings)


def test_the_manifest_decides_the_metrics_and_their_table1_columns(tmp_path):
    """An extra metric described in the manifest (lower is better, not in Table 1) is on the per-image
    page and CSV only; marked in_table1, it and Q^AB/F enter Table 1 (HTML and LaTeX), ranked by their
    own direction and decimals."""
    import pandas as pd

    from reports.build import build_report

    extra = {"name": "lpips", "label": "LPIPS", "label_html": "LPIPS<sub>alex</sub>", "label_tex": "LPIPS",
             "decimals": 3, "higher_is_better": False, "needs": "gt", "convention_dependent": False,
             "in_table1": False, "unit": ""}
    grid = grid_of(("RCAN", "SRFBN"), ("MGFF",), ("CFANet",))
    names = [entry["name"] for entry in grid["pipelines"]]
    scores = {"lpips": ("official", lambda i: 0.5 - 0.01 * i)}   # the last method has the lowest: best
    off = tmp_path / "off"
    off.mkdir()
    build_report(build_small(off, grid, metrics=METRIC_DESCRIPTORS + [extra], extra_scores=scores), off / "out",
                 n_resamples=200)
    per_image = pd.read_csv(off / "out" / "per_image.csv")
    assert "lpips" in per_image.columns and "qabf" in per_image.columns
    assert "LPIPS<sub>alex</sub>" in (off / "out" / "per_image.html").read_text()
    assert "lpips" not in (off / "out" / "table1_x2.html").read_text()
    assert set(pd.read_csv(off / "out" / "vs_cfanet.csv").metric) == set(TABLE1)

    on = tmp_path / "on"
    on.mkdir()
    described = [{**d, "in_table1": True} for d in METRIC_DESCRIPTORS] + [{**extra, "in_table1": True}]
    build_report(build_small(on, grid, metrics=described, extra_scores=scores), on / "out", n_resamples=200)
    page = (on / "out" / "table1_x2.html").read_text()
    shown = [m["name"] for m in described]
    assert re.findall(r'<th class="metric" data-metric="([^"]+)"', page)[:len(shown)] == shown
    assert "Q<sup>AB/F</sup>" in page and "LPIPS<sub>alex</sub>" in page
    parser = _Cells()
    parser.feed(page)
    cells = {key[1:]: value for key, value in parser.cells.items() if key[0] == 2}
    assert len(cells) == len(names) * len(shown)
    assert cells[(names[-1], "lpips")] == ("best", "<strong>0.460")            # the lowest is best
    assert cells[(names[-2], "lpips")][0] == "second" and cells[(names[0], "lpips")][0] == ""
    tex = (on / "out" / "table1_x2.tex").read_text()
    k = len(shown)
    assert "$Q^{AB/F}$" in tex and f"\\cmidrule(lr){{2-{1 + k}}}" in tex and f"\\multicolumn{{{k}}}{{c}}{{MGFF}}" in tex
    stats = pd.read_csv(on / "out" / "vs_cfanet.csv")
    assert set(stats.metric) == set(shown)
    assert not stats[stats.metric == "lpips"].higher_is_better.any()
    assert "(lower is better)" in (on / "out" / "vs_cfanet.html").read_text()
    if shutil.which("pdflatex"):
        shutil.copy(on / "out" / "table1_x2_standalone.tex", tmp_path / "table.tex")
        done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
                               "table.tex"], cwd=tmp_path, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout[-3000:]


def test_labels_from_the_store_are_text_not_markup(tmp_path):
    from reports.build import build_report

    hostile = {"name": "evil", "label": "evil", "label_html": "<script>alert(1)</script><sup>2</sup>",
               "label_tex": "\\input{/etc/passwd}", "decimals": 2, "higher_is_better": True, "needs": "gt",
               "convention_dependent": False, "in_table1": True, "unit": ""}
    grid = grid_of(("RCAN",), ("MGFF",), ("CFANet",))
    database = build_small(tmp_path, grid, metrics=METRIC_DESCRIPTORS + [hostile],
                           extra_scores={"evil": ("official", lambda i: 1.0 + i)})
    build_report(database, tmp_path / "out", n_resamples=100)
    for name in ("table1_x2.html", "per_image.html", "vs_cfanet.html"):
        page = (tmp_path / "out" / name).read_text()
        assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;<sup>2</sup>" in page, name
    tex = (tmp_path / "out" / "table1_x2.tex").read_text()
    assert "\\input{/etc" not in tex and "\\textbackslash{}input\\{/etc/passwd\\}" in tex


def test_an_old_database_without_grid_or_metrics(tmp_path):
    """Manifests written before the grid and the metric descriptors were recorded: the paper's
    components place the methods, the registry describes the metrics, CFANet is the reference, and a
    name nothing can place gets a row under "Other methods"."""
    import pandas as pd

    from reports.build import build_report

    specs = dict(SPECS)
    specs["Foo+Bar"] = {"name": "Foo+Bar", "order": "joint", "joint": "Foo+Bar"}   # how the fixture times it
    database = build_small(tmp_path, None, metrics=None, specs=specs, legacy=True,
                           manifest={"grid": None, "metrics": None})
    for run in __import__("sqlite3").connect(database).execute("SELECT manifest FROM runs"):
        assert "grid" not in json.loads(run[0]) and "metrics" not in json.loads(run[0])
    result = build_report(database, tmp_path / "out", n_resamples=200)
    out = tmp_path / "out"
    rows = _table_rows((out / "table1_x2.html").read_text())
    assert rows["Super Resolution + Image Fusion"] == list(SR_MODELS)
    assert rows["groups:Super Resolution + Image Fusion"] == list(MEF_METHODS)
    assert rows["Image Fusion + Super Resolution"] == list(MEF_METHODS)
    assert rows["Joint MEF and SR"] == list(JOINT_MODELS) and rows["Other methods"] == ["Foo+Bar"]
    parser = _Cells()
    parser.feed((out / "table1_x2.html").read_text())
    assert {key[2] for key in parser.cells} == set(TABLE1)          # the registry's defaults
    per_image = pd.read_csv(out / "per_image.csv")
    assert "qabf" in per_image.columns and set(per_image.method) == set(specs)
    stats = pd.read_csv(out / "vs_cfanet.csv")
    assert set(stats.difference) == {"CFANet - method"} and "Foo+Bar" in set(stats.method)
    assert "unknown composition: Foo+Bar" in (out / "runtime.html").read_text()
    assert not any("have no results" in w for w in result.warnings)
    # stage times attributed from the older runners' recording order
    runtime = pd.read_csv(out / "runtime.csv").set_index(["scale", "method"])
    assert runtime.at[(2, "RCAN+MGFF"), "seconds_per_scene"] == pytest.approx(2 * 0.02 + 0.1)
    assert runtime.at[(4, "MGFF+DBPN"), "seconds_per_scene"] == pytest.approx(0.02 + 0.01)
    assert runtime.at[(2, "CFANet"), "seconds_per_scene"] == pytest.approx(0.4)
    assert "MGFF: 0" in runtime.at[(2, "MGFF+DBPN"), "components"]       # the paper's classical methods
    assert math.isnan(runtime.at[(2, "Foo+Bar"), "seconds_per_scene"])


# -- units ------------------------------------------------------------------------------------

def test_rank_marks_ties_on_printed_values():
    import pandas as pd

    from reports.table1 import rank_marks

    values = pd.Series({"a": 0.816841, "b": 0.816849, "c": 0.81, "d": 0.81, "e": 0.5, "f": float("nan")})
    assert rank_marks(values, 4).to_dict() == {"a": "best", "b": "best", "c": "second", "d": "second", "e": "",
                                               "f": ""}
    assert set(rank_marks(values, 6)[lambda s: s == "best"].index) == {"b"}
    assert rank_marks(pd.Series({"a": 1.0}), 2).to_dict() == {"a": "best"}
    lower = rank_marks(values, 4, higher_is_better=False)                   # lower is better
    assert lower.to_dict() == {"a": "", "b": "", "c": "second", "d": "second", "e": "best", "f": ""}


def test_bootstrap_and_wilcoxon_edge_cases():
    from reports.stats import holm, paired_bootstrap_ci, wilcoxon_signed_rank

    rng = np.random.default_rng(1)
    d = rng.normal(0.5, 1.0, size=40)
    mean, low, high = paired_bootstrap_ci(d, n_resamples=10_000, seed=0)
    assert low < mean < high and mean == pytest.approx(d.mean())
    assert paired_bootstrap_ci(d, seed=0) == paired_bootstrap_ci(d, seed=0)  # seeded
    assert paired_bootstrap_ci([0.3, 0.3, 0.3]) == pytest.approx((0.3, 0.3, 0.3))
    assert all(np.isnan(paired_bootstrap_ci([])))
    assert wilcoxon_signed_rank(np.zeros(5)).p_value == 1.0
    assert wilcoxon_signed_rank(np.zeros(5)).note == "all differences are zero"
    small = wilcoxon_signed_rank([1.0, 2.0, 3.0])
    assert small.p_value == pytest.approx(0.25) and "cannot fall below" in small.note
    assert wilcoxon_signed_rank([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).n_nonzero == 6
    assert np.isnan(wilcoxon_signed_rank([]).p_value)
    assert list(holm([0.01, 0.04, 0.03, float("nan")])[:3]) == pytest.approx([0.03, 0.06, 0.06])


def test_errors_name_what_to_fix(fixture, tmp_path):
    from reports.build import build_report

    with pytest.raises(ReportError, match="no results database"):
        build_report(tmp_path / "none.sqlite", tmp_path / "out")
    with pytest.raises(ReportError, match="no run 'nope'"):
        build_report(fixture["database"], tmp_path / "out", run_id="nope")
    with pytest.raises(ReportError, match="did you mean"):
        build_report(fixture["database"], tmp_path / "out", methods=["RCAN+MGF"])
    with pytest.raises(ReportError, match="no scene 'zzz'"):
        build_report(fixture["database"], tmp_path / "out", scene="zzz")
    with pytest.raises(ReportError, match="no runs of profile 'paper'"):
        build_report(fixture["database"], tmp_path / "out", profile="paper")


# -- the command, without torch ---------------------------------------------------------------

def test_report_command_renders_without_importing_torch(fixture, tmp_path):
    config = tmp_path / "benchmark.toml"
    config.write_text(f'[profiles.demo]\noutput_dir = "{fixture["database"].parent.as_posix()}"\n')
    script = f"""
import argparse, sys
from reports.command import add_report_parser, cmd_report
parser = argparse.ArgumentParser()
parser.add_argument("--config")
add_report_parser(parser.add_subparsers())
args = parser.parse_args(["--config", {str(config)!r}, "report", "--output", {str(tmp_path / "cli")!r},
                          "--scene", "alpha", "--methods", "cfanet", "RCAN+MGFF", "--convention", "sr",
                          "--gt-panel"])
status = cmd_report(args)
loaded = sorted(name for name in sys.modules if name == "torch" or name.startswith("torch."))
print("TORCH", loaded)
sys.exit(status)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "TORCH []" in done.stdout
    assert "index.html" in done.stdout and "DEMO weights" in done.stdout
    index = (tmp_path / "cli" / "index.html").read_text()
    assert "convention &ldquo;sr&rdquo;" in index and "Scene alpha at x2" in index
    # --methods keeps its order after the inputs; --gt-panel adds the ground truth as the last panel
    assert "(c)-(d) the outputs of 2 methods" in index and "(c) CFANet (ours), (d) RCAN+MGFF" in index
    assert "(e) ground truth" in index
    assert "paper: x2 against" in done.stdout and "paper: comparison of form only" in done.stdout


def test_report_command_error_is_one_line(tmp_path, capsys):
    from reports.command import cmd_report

    config = tmp_path / "benchmark.toml"
    config.write_text(f'[profiles.demo]\noutput_dir = "{(tmp_path / "empty").as_posix()}"\n')
    args = argparse.Namespace(config=str(config), profile=None, run=None, output=None, scene=None, methods=None,
                              convention=None)
    assert cmd_report(args) == 2
    assert capsys.readouterr().err.startswith("error: no results database")


# -- the page in a real browser ---------------------------------------------------------------

def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_index_renders_in_headless_chromium(report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no headless Chromium (Debian: apt-get install chromium)")
    index = (report["output"] / "index.html").resolve().as_uri()
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
             "--window-size=1400,2000"]
    dom = subprocess.run(flags + ["--dump-dom", index], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-report-ready="1"' in dom.stdout
    heights = [int(h) for h in re.findall(r'class="table1"[^>]*data-rendered-height="(\d+)"', dom.stdout)]
    widths = [int(w) for w in re.findall(r'class="table1"[^>]*data-rendered-width="(\d+)"', dom.stdout)]
    assert len(heights) == len(SCALES) and min(heights) > 200 and min(widths) > 500
    assert "&lt;b&gt;x&lt;/b&gt;" in dom.stdout and "<b>x</b>" not in dom.stdout
    artefacts = Path(os.environ.get("CFANET_TEST_ARTIFACTS") or tmp_path)
    artefacts.mkdir(parents=True, exist_ok=True)
    shot = artefacts / "report_index.png"
    done = subprocess.run(flags + [f"--screenshot={shot}", index], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1400, 2000) and np.asarray(image.convert("L")).std() > 10
    print(f"screenshot: {shot}")
