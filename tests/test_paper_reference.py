"""The paper's own numbers beside a run's Table 1: the shipped reference, the comparison (ours, paper,
ours - paper; Kendall's tau-b), what the pages say about comparability, and Figure 3's paper panels.

Reports are built from small results stores written as the runner writes them (`test_reports.
build_small`: no model runs), with per-method means injected so that every number is known here.
"""

from __future__ import annotations

import csv
import html.parser
import math
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from scipy.stats import kendalltau

from reports.paper_reference import REFERENCE_DIR, load_paper_reference
from test_reports import JOINT_MODELS, MEF_METHODS, SR_MODELS, build_small, grid_of

REPO = Path(__file__).resolve().parents[1]
PAPER = load_paper_reference()
PLUGIN = "MyJoint"                     # a joint method the paper does not have
DROPPED = "U2Fusion+SwinIR"            # a paper method left out of the run's grid


def shared_reference() -> Path:
    """`<shared>/reference/paper_table1.csv` (beside $CFANET_SHARED_DATA, else `<repo>/../shared`)."""
    data = Path(os.environ.get("CFANET_SHARED_DATA") or REPO.parent / "shared" / "data")
    for root in (data.parent / "reference", REPO.parent / "shared" / "reference"):
        if (root / "paper_table1.csv").is_file():
            return root / "paper_table1.csv"
    pytest.skip("the shared paper_table1.csv is not here (set CFANET_SHARED_DATA)")


# -- the shipped reference --------------------------------------------------------------------------

def test_the_shipped_table_equals_the_shared_reference_value_for_value():
    with shared_reference().open(newline="") as handle:
        shared = list(csv.DictReader(handle))
    with (REFERENCE_DIR / "paper_table1.csv").open(newline="") as handle:
        shipped = list(csv.DictReader(handle))
    assert [row["method"] for row in shipped] == [row["method"] for row in shared]
    assert shipped[0].keys() == shared[0].keys()
    for mine, theirs in zip(shipped, shared):
        assert mine["order"] == theirs["order"]
        for column in theirs:
            if column not in ("method", "order"):
                assert float(mine[column]) == float(theirs[column]), (mine["method"], column)
    # and the loaded reference holds exactly those values, under our metric names
    columns = {"psnr_db": "psnr", "ssim": "ssim", "mef_ssim": "mef_ssim"}
    assert list(PAPER.methods) == [row["method"] for row in shared]
    for row in shared:
        for column, metric in columns.items():
            assert PAPER.value(row["method"], metric) == float(row[column])
        assert PAPER.orders[row["method"]] == row["order"]


def test_the_reference_says_what_its_numbers_are():
    from cfanet.metrics.registry import metric_names

    assert PAPER.scale == 2 and PAPER.dataset == "SICE"
    assert "states no metric convention" in PAPER.convention
    assert "Rong Wang and Chunjiang Duanmu" in PAPER.citation and "Coupled Feedback Attention Networks" in PAPER.citation
    assert "Vol-3351" in PAPER.citation and "pp. 8-13" in PAPER.citation
    assert PAPER.url.startswith("https://") and "://" not in PAPER.offline_citation
    assert set(PAPER.metrics) <= set(metric_names())
    assert PAPER.proposed == "CFANet" and PAPER.proposed in PAPER
    assert PAPER.value("CFANet", "psnr") == 21.49 and PAPER.value(PLUGIN, "psnr") is None
    assert PAPER.value("CFANet", "qabf") is None
    with pytest.raises(Exception):
        PAPER.values["CFANet"]["psnr"] = 0.0             # read-only


def test_the_paper_names_are_our_registry_names():
    """Every method of the paper's Table 1 is a pipeline of our default (paper) grid, same order."""
    from pipelines.catalog import paper_grid
    from pipelines.registry import methods

    ours = paper_grid(methods()).pipelines()
    assert [p.name for p in ours] == list(PAPER.methods)
    assert {p.name: p.order for p in ours} == dict(PAPER.orders)


def test_figure3_selection_is_the_papers_in_its_order():
    from reports.figure3 import DEFAULT_METHODS

    assert tuple(DEFAULT_METHODS) == PAPER.figure3_methods
    assert set(PAPER.figure3_methods) <= set(PAPER.methods)
    notes = shared_reference().parent / "cfanet.md"
    if notes.is_file():  # the paper's list as the shared notes spell it: "(c) DBPN+Fast SPD-MEF, ..., (l) Ours."
        text = " ".join(notes.read_text().split())
        listed = text.split("Figure 3", 1)[1].split("The paper states", 1)[0]
        panels = re.findall(r"\(([a-z])\) ([^,(]+?)(?:,|\.\s| and |$)", listed)
        names = [name.strip().replace("Fast SPD-MEF", "Fast-SPD-MEF") for _, name in panels]
        names = [PAPER.proposed if name == "Ours" else name for name in names]
        assert names[2:] == list(PAPER.figure3_methods), names
        assert [letter for letter, _ in panels] == [chr(ord("a") + i) for i in range(len(panels))]


def test_a_damaged_reference_is_refused(tmp_path):
    for name in ("paper.toml", "paper_table1.csv"):
        shutil.copy(REFERENCE_DIR / name, tmp_path / name)
    table = tmp_path / "paper_table1.csv"
    table.write_text(table.read_text().replace("21.49", "n/a"))
    with pytest.raises(ValueError, match="not a number"):
        load_paper_reference(tmp_path)
    shutil.copy(REFERENCE_DIR / "paper_table1.csv", table)
    meta = tmp_path / "paper.toml"
    meta.write_text(meta.read_text().replace('"SRFBN+MGFF"', '"SRFBN+MGF"'))
    with pytest.raises(ValueError, match="SRFBN\\+MGF not in"):
        load_paper_reference(tmp_path)


# -- Kendall's tau and comparability, as units ------------------------------------------------------

def test_kendall_tau_is_scipys_tau_b_over_the_pairs_in_both():
    from reports.vs_paper import kendall_tau

    ours = [3.0, 1.0, 2.0, 2.0, float("nan"), 5.0]
    paper = [2.5, 1.5, 1.5, 3.0, 4.0, float("nan")]
    found = kendall_tau(ours, paper)
    expected = kendalltau([3.0, 1.0, 2.0, 2.0], [2.5, 1.5, 1.5, 3.0])     # tau-b: ties on both sides
    assert found.n == 4
    assert found.tau == pytest.approx(expected.statistic) and found.p_value == pytest.approx(expected.pvalue)
    assert kendall_tau([1, 2, 3], [10, 20, 30]).tau == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3], [30, 20, 10]).tau == pytest.approx(-1.0)
    assert math.isnan(kendall_tau([1.0], [2.0]).tau) and math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]).tau)


def _data(manifests, demo=()):
    return SimpleNamespace(runs=[SimpleNamespace(manifest=m) for m in manifests], demo_weights=list(demo))


def test_comparability_needs_the_papers_data_set_and_no_demo_weights():
    from reports.vs_paper import judge_comparability

    def judge(manifests, demo=(), kind=None, label="the scenes"):
        return judge_comparability(PAPER, _data(manifests, demo), dataset_kind=kind, dataset_label=label,
                                   convention="paper")

    sice = judge([{"dataset": {"kind": "sice", "name": "SICE"}}])
    assert sice.comparable and not sice.reasons
    assert "metric convention is unstated" in sice.text and "convention 'paper'" in sice.text
    assert "only of form" not in sice.text
    assert judge([{}], kind="sice").comparable                           # the profile's kind, unrecorded
    assert judge([{"dataset": "SICE"}]).comparable
    demo_weights = judge([{"dataset": {"kind": "sice"}}], demo=["CFANet"])
    assert not demo_weights.comparable and "CFANet ran with demo weights" in demo_weights.text
    demo_data = judge([{"dataset": {"kind": "demo"}}], kind="sice", label="the demo scenes")
    assert not demo_data.comparable and "the data set is the demo scenes, not SICE" in demo_data.text
    unknown = judge([{}])                                                  # nothing says it was SICE
    assert not unknown.comparable
    mixed = judge([{"dataset": {"kind": "sice"}}, {"dataset": {"kind": "demo"}}], label="SICE and demo")
    assert not mixed.comparable
    for judged in (demo_weights, demo_data, unknown, mixed):
        assert "The comparison with the paper is only of form, not a reproduction" in judged.text
        assert "different data and weights" in judged.text


# -- a report beside the paper ------------------------------------------------------------------------

def increasing(metric):
    """Our injected mean of a paper method: a strictly increasing function of the paper's value."""
    return {"psnr": lambda v: 1.5 * v - 3.0, "mef_ssim": lambda v: v * v}[metric]


def demo_grid() -> dict:
    grid = grid_of(SR_MODELS, MEF_METHODS, (*JOINT_MODELS, PLUGIN))
    grid["pipelines"] = [p for p in grid["pipelines"] if p["name"] != DROPPED]
    return grid


def injected(grid) -> dict[str, dict[str, float]]:
    """{method: {metric: our mean}}: PSNR and MEF-SSIM increasing in the paper's values, SSIM by
    position (some other order), the plugin's arbitrary."""
    names = [p["name"] for p in grid["pipelines"]]
    means = {}
    for i, name in enumerate(names):
        if name in PAPER:
            means[name] = {"psnr": increasing("psnr")(PAPER.value(name, "psnr")), "ssim": 0.6 + 0.01 * i,
                           "mef_ssim": increasing("mef_ssim")(PAPER.value(name, "mef_ssim"))}
        else:
            means[name] = {"psnr": 30.0 + i, "ssim": 0.5, "mef_ssim": 0.7}
    return means


def store(root: Path, grid: dict, manifest: dict) -> Path:
    means = injected(grid)
    names = [p["name"] for p in grid["pipelines"]]
    extra = {metric: (convention, lambda i, metric=metric: means[names[i]][metric])
             for metric, convention in (("psnr", "paper"), ("ssim", "paper"), ("mef_ssim", "official"))}
    return build_small(root, grid, extra_scores=extra, manifest=manifest)


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    from reports.build import build_report

    root = tmp_path_factory.mktemp("demo")
    grid = demo_grid()
    database = store(root, grid, {"dataset": {"kind": "demo", "name": "the demo scenes"},
                                   "demo_weights": ["CFANet", "RCAN"]})
    result = build_report(database, root / "out", dataset="the demo scenes", n_resamples=100)
    return {"result": result, "out": root / "out", "grid": grid, "means": injected(grid), "database": database}


class _VsPaperCells(html.parser.HTMLParser):
    """The table beside the paper: (method, metric, kind) -> text, kind in ours/paper/diff."""

    def __init__(self):
        super().__init__()
        self.cells, self._key, self._text = {}, None, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "td" and "data-kind" in attrs:
            self._key, self._text = (attrs["data-method"], attrs["data-metric"], attrs["data-kind"]), []

    def handle_data(self, data):
        if self._key:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._key:
            self.cells[self._key] = "".join(self._text).strip()
            self._key = None


def expected_rows(grid) -> list[str]:
    names = [p["name"] for p in grid["pipelines"]]
    return names + [name for name in PAPER.methods if name not in names]


def test_table1_page_shows_ours_paper_and_difference_for_every_method(demo_report):
    out, means, grid = demo_report["out"], demo_report["means"], demo_report["grid"]
    page = (out / "table1_x2.html").read_text()
    assert page.index('class="table1"') < page.index('id="vs-paper-x2"')     # Table 1 first, intact
    parser = _VsPaperCells()
    parser.feed(page)
    rows = expected_rows(grid)
    assert {key[0] for key in parser.cells} == set(rows)
    assert len(parser.cells) == len(rows) * len(PAPER.metrics) * 3
    decimals = {"psnr": 2, "ssim": 4, "mef_ssim": 4}
    for name in rows:
        for metric in PAPER.metrics:
            ours, paper, diff = (parser.cells[(name, metric, kind)] for kind in ("ours", "paper", "diff"))
            if name == PLUGIN:
                assert paper == diff == "\u2014" and ours == f"{means[name][metric]:.{decimals[metric]}f}"
            elif name == DROPPED:
                assert ours == diff == "\u2014" and float(paper) == PAPER.value(name, metric)
            else:
                assert float(paper) == PAPER.value(name, metric)
                assert float(ours) == pytest.approx(means[name][metric], abs=0.51 * 10 ** -decimals[metric])
                assert float(diff) == pytest.approx(means[name][metric] - PAPER.value(name, metric),
                                                    abs=0.51 * 10 ** -decimals[metric])
    # one difference spelled out: CF-Net's PSNR, 1.5 * 21.24 - 3 = 28.86 against the paper's 21.24
    assert parser.cells[("CF-Net", "psnr", "ours")] == "28.86"
    assert parser.cells[("CF-Net", "psnr", "paper")] == "21.24"
    assert parser.cells[("CF-Net", "psnr", "diff")] == "+7.62"
    assert "(the paper's &ldquo;Ours&rdquo;)" in page and "(not in this run)" in page and "(not in the paper)" in page
    assert (out / "paper_scatter_x2.png").is_file() and 'src="paper_scatter_x2.png"' in page


def test_companion_csv_and_latex_hold_the_same_numbers(demo_report):
    out, means, grid = demo_report["out"], demo_report["means"], demo_report["grid"]
    frame = pd.read_csv(out / "table1_x2_vs_paper.csv").set_index("method")
    rows = expected_rows(grid)
    assert list(frame.index) == rows and set(frame.scale) == {2}
    assert list(frame.columns) == ["scale", "order", "in_run", "in_paper",
                                   *[f"{m}_{k}" for m in PAPER.metrics for k in ("ours", "paper", "diff")]]
    for name in rows:
        for metric in PAPER.metrics:
            paper = PAPER.value(name, metric)
            row = frame.loc[name]
            if name == PLUGIN:
                assert math.isnan(row[f"{metric}_paper"]) and math.isnan(row[f"{metric}_diff"])
            elif name == DROPPED:
                assert math.isnan(row[f"{metric}_ours"]) and row[f"{metric}_paper"] == paper
            else:
                assert row[f"{metric}_ours"] == pytest.approx(means[name][metric])
                assert row[f"{metric}_paper"] == paper
                assert row[f"{metric}_diff"] == pytest.approx(means[name][metric] - paper)
    assert frame.at["CF-Net", "psnr_diff"] == pytest.approx(1.5 * 21.24 - 3.0 - 21.24)
    assert not frame.at[PLUGIN, "in_paper"] and not frame.at[DROPPED, "in_run"]

    tex = (out / "table1_x2_vs_paper.tex").read_text()
    lines = {line.split(" & ")[0]: [c.strip() for c in line.rstrip("\\ ").split(" & ")]
             for line in tex.splitlines() if " & " in line and not line.startswith(("Method", " &"))}
    assert set(lines) == {f"{n} (proposed)" if n == PAPER.proposed else n for n in rows}
    cf = lines["CF-Net"]
    assert cf[1] == "joint" and cf[2:5] == ["28.86", "21.24", "+7.62"]
    assert lines[PLUGIN][3:5] == ["---", "---"] and lines[DROPPED][2] == "---"
    assert "only of form, not a reproduction" in tex and "Kendall's tau-b" in tex
    assert "\\toprule" in tex and "\\cmidrule(lr){3-5}" in tex
    if shutil.which("pdflatex"):
        work = out.parent / "latex"
        work.mkdir(exist_ok=True)
        shutil.copy(out / "table1_x2_vs_paper_standalone.tex", work / "table.tex")
        done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
                               "table.tex"], cwd=work, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout[-3000:]


def test_rank_agreement_is_scipys_and_one_for_an_increasing_function(demo_report):
    out, means, grid = demo_report["out"], demo_report["means"], demo_report["grid"]
    both = [p["name"] for p in grid["pipelines"] if p["name"] in PAPER]
    rank = pd.read_csv(out / "table1_x2_vs_paper_rank.csv").set_index("metric")
    assert list(rank.index) == list(PAPER.metrics) and set(rank.n_methods) == {len(both)}
    for metric in ("psnr", "mef_ssim"):                    # increasing in the paper's values
        assert rank.at[metric, "kendall_tau_b"] == pytest.approx(1.0)
    expected = kendalltau([means[n]["ssim"] for n in both], [PAPER.value(n, "ssim") for n in both])
    assert rank.at["ssim", "kendall_tau_b"] == pytest.approx(expected.statistic)
    assert rank.at["ssim", "p_value"] == pytest.approx(expected.pvalue)
    assert abs(expected.statistic) < 0.9                       # the position order is another order
    comparison = demo_report["result"].paper_comparisons[0]
    assert [a.tau for a in comparison.agreement] == pytest.approx(list(rank.kendall_tau_b))
    page = (out / "table1_x2.html").read_text()
    assert re.search(r'<tr data-metric="psnr">.*?<td class="num">%d</td>.*?1\.000' % len(both), page)
    lines = demo_report["result"].summary_lines()
    tau_line = next(line for line in lines if line.startswith("paper: x2"))
    assert f"PSNR +1.000 ({len(both)} methods" in tau_line and f"SSIM {expected.statistic:+.3f}" in tau_line
    assert any(line.startswith("paper: x4: the paper publishes no x4 numbers") for line in lines)


def test_the_demo_run_is_compared_in_form_only(demo_report):
    out = demo_report["out"]
    for page in ("index.html", "table1_x2.html"):
        text = (out / page).read_text()
        assert "The comparison with the paper is only of form, not a reproduction" in text, page
        assert "the data set is the demo scenes, not SICE" in text and "CFANet, RCAN ran with demo weights" in text
        assert 'data-comparable="no"' in text and "metric convention is unstated" not in text
    assert any(line.startswith("paper: comparison of form only") for line in demo_report["result"].summary_lines())
    x4 = (out / "table1_x4.html").read_text()
    assert "the paper publishes no x4 numbers" in x4 and 'id="vs-paper-x4"' not in x4
    assert "The paper publishes no x4 numbers" in (out / "table1_x4.tex").read_text()
    assert not list(out.glob("*x4_vs_paper*")) and not (out / "paper_scatter_x4.png").exists()
    index = (out / "index.html").read_text()
    assert 'href="table1_x2_vs_paper.csv"' in index and 'src="paper_scatter_x2.png"' in index
    assert "Against the paper at x4: the paper publishes no x4 numbers" in index
    assert "://" not in index.split("<script>")[0]                     # the citation stays offline


def test_a_sice_run_without_demo_weights_names_its_convention(tmp_path):
    from reports.build import build_report

    grid = grid_of(("RCAN",), ("MGFF",), ("CFANet",))
    database = store(tmp_path, grid, {"dataset": {"kind": "sice", "name": "SICE"}, "demo_weights": []})
    result = build_report(database, tmp_path / "out", convention="sr", n_resamples=100)
    for page in ("index.html", "table1_x2.html"):
        text = (tmp_path / "out" / page).read_text()
        assert "only of form" not in text and "Demo weights:" not in text, page
        assert "The paper&#39;s metric convention is unstated" in text and "convention &#39;sr&#39;" in text
        assert 'data-comparable="yes"' in text
    assert "paper states no metric convention" in (tmp_path / "out" / "table1_x2_vs_paper.tex").read_text()
    lines = result.summary_lines()
    assert any(line.startswith("paper: comparable data and weights") for line in lines)
    assert not any("form only" in line for line in lines)


# -- Figure 3: the paper's panels ---------------------------------------------------------------------

def test_figure3_default_panels_are_the_papers_and_the_gt_panel_is_an_option(demo_report, tmp_path):
    from reports.build import build_report, canonical_methods
    from reports.data import load_report_data
    from reports.figure3 import panel_letter, render_figure3

    data = load_report_data(demo_report["database"])
    methods = canonical_methods(data, None)
    assert methods == list(PAPER.figure3_methods)              # every one is in this run's grid
    figure = render_figure3(data, 2, "alpha", methods, "paper", tmp_path / "fig")
    titles = [*PAPER.figure3_inputs, *(f"{m} (ours)" if m == PAPER.proposed else m for m in methods)]
    assert figure.panels == [f"({chr(ord('a') + i)}) {title}" for i, title in enumerate(titles)]
    assert figure.panels[0].startswith("(a) Over") and figure.panels[1].startswith("(b) Under")
    assert figure.panels[-1] == f"{panel_letter(len(titles) - 1)} CFANet (ours)"
    assert "ground truth" not in figure.caption and not any("Ground" in p for p in figure.panels)
    with_gt = render_figure3(data, 2, "alpha", methods, "paper", tmp_path / "fig", gt_panel=True)
    assert with_gt.panels == figure.panels + [f"{panel_letter(len(titles))} Ground truth"]
    assert "ground truth" in with_gt.caption
    # --methods still chooses (and orders) the panels
    chosen = render_figure3(data, 2, "alpha", ["RCAN+MGFF", "CF-Net"], "paper", tmp_path / "fig")
    assert chosen.panels[2:] == ["(c) RCAN+MGFF", "(d) CF-Net"]
    assert panel_letter(25) == "(z)" and panel_letter(26) == "(aa)"
    # down from build_report
    build_report(demo_report["database"], tmp_path / "gt", n_resamples=50, figure_scales=[2], gt_panel=True)
    index = (tmp_path / "gt" / "index.html").read_text()
    assert "ground truth" in index and "(c)-(l) the outputs of" in index


def test_report_keeps_its_signature_and_passes_gt_panel(demo_report, tmp_path):
    import inspect

    from reports.command import add_report_parser, report

    parameters = inspect.signature(report).parameters
    assert list(parameters)[:2] == ["config", "profile_name"] and parameters["gt_panel"].default is False
    import argparse

    parser = argparse.ArgumentParser()
    add_report_parser(parser.add_subparsers())
    assert parser.parse_args(["report", "--gt-panel"]).gt_panel is True
    assert parser.parse_args(["report"]).gt_panel is False
    sub = next(a for a in parser._subparsers._group_actions[0].choices["report"]._actions if a.dest == "methods")
    assert " ".join(PAPER.figure3_methods) in sub.help and "paper's selection" in sub.help
