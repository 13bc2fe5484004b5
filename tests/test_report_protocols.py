"""Every report caption says which inference protocol ran (`reports.protocols`).

The paper does not state its protocol, so Table 1 (HTML and LaTeX), the table beside the paper, Figure
3 (its footer and caption), the other pages and `report`'s printed summary say which one each method
ran under, read per method from the manifest of the run its scores come from. Results databases are
written as the runner writes them (`test_reports`' helpers; no model runs), their manifests' `grid`
recording each component's `protocol` and `protocol_asked`, or, as before protocols existed, neither.
"""

from __future__ import annotations

import copy
import html
from pathlib import Path

import pytest

from test_reports import (MANIFEST, METRIC_DESCRIPTORS, _record_run, build_small, fixture_scores, grid_of,
                          write_images)

EXACT = ("Inference protocol: exact for every method (each network on the whole image, its output rounded once "
         "to 8 bits).")
RCAN_OFFICIAL = ("Inference protocol: official for RCAN (its release script, bit for bit); exact for the others "
                 "(each network on the whole image, its output rounded once to 8 bits).")
PER_PIPELINE = ("Inference protocol: exact for every other method (each network on the whole image, its output "
                "rounded once to 8 bits); RCAN ran official in RCAN+MGFF but exact in MGFF+RCAN.")
SR, MEF, JOINT = ("RCAN", "SRFBN"), ("MGFF",), ("CF-Net", "CFANet")


def with_protocols(grid: dict, ran: dict[str, str] | None = None, asked: dict[str, str] | None = None) -> dict:
    """`grid` with every component's `protocol` (`ran`, default exact) and `protocol_asked` (`asked`,
    default what ran), as `pipelines.manifest.grid_record` records them."""
    grid = copy.deepcopy(grid)
    for name, entry in grid["components"].items():
        entry["protocol"] = (ran or {}).get(name, "exact")
        entry["protocol_asked"] = (asked or {}).get(name, entry["protocol"])
    return grid


def small_grid() -> dict:
    return grid_of(SR, MEF, JOINT)


def report_of(database: Path, output: Path, **options):
    from reports.build import build_report

    result = build_report(database, output, n_resamples=20, figure_scales=[2], **options)
    return result, output


def captions(output: Path) -> dict[str, str]:
    """The caption text of every page that has one, HTML unescaped (LaTeX as written)."""
    index = (output / "index.html").read_text()
    return {
        "table1.html": html.unescape((output / "table1_x2.html").read_text()),
        "table1.tex": (output / "table1_x2.tex").read_text(),
        "vs_paper.tex": (output / "table1_x2_vs_paper.tex").read_text(),
        "index.html": html.unescape(index),
        "figure3 caption": html.unescape(index.split('id="figure3-x2"', 1)[1].split("</figcaption>", 1)[0]),
        **{page: html.unescape((output / page).read_text())
           for page in ("per_image.html", "vs_cfanet.html", "runtime.html")},
    }


def table1_figcaption(page: str) -> str:
    return page.split('<figure class="table1-figure"', 1)[1].split("</figcaption>", 1)[0]


def summary_protocol(result) -> list[str]:
    return [line for line in result.summary_lines() if line.startswith("protocol:")]


# -- one run, every method exact -----------------------------------------------------------------------

def test_an_all_exact_run_says_exact_on_every_caption(tmp_path):
    from reports.data import load_report_data
    from reports.figure3 import figure_footer
    from reports.protocols import pipeline_protocols

    database = build_small(tmp_path / "results", with_protocols(small_grid()))
    result, output = report_of(database, tmp_path / "out")
    found = captions(output)
    assert EXACT in table1_figcaption(found["table1.html"])
    assert EXACT in found["table1.tex"] and "\\caption{" in found["table1.tex"]
    assert "The paper does not state its inference protocol" in found["vs_paper.tex"]
    assert "ours is exact for every method (each network on the whole image" in found["vs_paper.tex"]
    assert EXACT in found["figure3 caption"]
    for page in ("per_image.html", "vs_cfanet.html", "runtime.html"):
        assert f'<p class="protocol">{EXACT}</p>' in found[page], page
    assert "release script" not in table1_figcaption(found["table1.html"])
    data = load_report_data(database)
    assert EXACT in figure_footer(data, 2, "alpha", "paper")
    assert summary_protocol(result) == ["protocol: " + EXACT.removeprefix("Inference protocol: ").rstrip(".")]
    assert set(pipeline_protocols(data)["RCAN+MGFF"].values()) == {"exact"}


# -- one run, RCAN under its release script -------------------------------------------------------------

def test_a_run_with_rcan_official_names_rcan_and_says_exact_for_the_others(tmp_path):
    from reports.data import load_report_data
    from reports.figure3 import figure_footer
    from reports.protocols import component_protocols, pipeline_protocols

    grid = with_protocols(small_grid(), {"RCAN": "official"}, {"RCAN": "official"})
    database = build_small(tmp_path / "results", grid)
    result, output = report_of(database, tmp_path / "out", methods=["RCAN+MGFF", "CFANet"])   # Figure 3's
    found = captions(output)
    assert RCAN_OFFICIAL in table1_figcaption(found["table1.html"])
    assert RCAN_OFFICIAL in found["table1.tex"]
    assert "ours is official for RCAN (its release script, bit for bit); exact for the others" in found["vs_paper.tex"]
    assert RCAN_OFFICIAL in found["figure3 caption"]
    assert RCAN_OFFICIAL in figure_footer(load_report_data(database), 2, "alpha", "paper")
    (line,) = summary_protocol(result)
    assert line.startswith("protocol: official for RCAN (") and "exact for the others" in line
    data = load_report_data(database)
    assert pipeline_protocols(data)["RCAN+MGFF"] == {"RCAN": "official", "MGFF": "exact"}
    assert pipeline_protocols(data)["MGFF+SRFBN"] == {"MGFF": "exact", "SRFBN": "exact"}
    assert pipeline_protocols(data)["CF-Net"] == {"CF-Net": "exact"}
    table = component_protocols(data)
    assert list(table) == ["RCAN", "SRFBN", "MGFF", "CF-Net", "CFANet"]        # SR, MEF, joint
    assert set(table["RCAN"].values()) == {"official"} and set(table["RCAN"]) == {"RCAN+MGFF", "MGFF+RCAN"}
    # a figure of methods without RCAN: every one of them ran exact
    assert EXACT in figure_footer(data, 2, "alpha", "paper", ["SRFBN+MGFF", "CFANet"])


def test_official_for_every_method_that_has_one(tmp_path):
    """`--protocol official` for all: the methods without a release protocol ran exact, and the sentence
    names them."""
    from reports.data import load_report_data
    from reports.protocols import protocol_sentence

    grid = small_grid()
    asked = {name: "official" for name in grid["components"]}
    grid = with_protocols(grid, {"RCAN": "official", "SRFBN": "official", "CF-Net": "official"}, asked)
    data = load_report_data(build_small(tmp_path, grid))
    assert protocol_sentence(data) == (
        "Inference protocol: official for every method that has one (each as its release script runs it, bit for "
        "bit); MGFF and CFANet have none and ran exact (each network on the whole image, its output rounded once "
        "to 8 bits).")
    assert protocol_sentence(data, ["RCAN+MGFF"]) == (
        "Inference protocol: official for every method that has one (each as its release script runs it, bit for "
        "bit); MGFF has none and ran exact (each network on the whole image, its output rounded once to 8 bits).")
    assert protocol_sentence(data, ["CF-Net"]) == ("Inference protocol: official for every method (each as its "
                                                   "release script runs it, bit for bit).")
    assert protocol_sentence(data, ["CFANet"]) == EXACT.removesuffix(".") + (
        "; official was asked, but CFANet has none.")


# -- manifests written before protocols existed ---------------------------------------------------------

@pytest.mark.parametrize("grid", ["recorded without protocols", "no grid at all"])
def test_an_old_manifest_without_the_keys_reads_as_exact(tmp_path, grid):
    from reports.data import load_report_data
    from reports.protocols import pipeline_protocols, protocol_sentence, recorded_protocol

    old = small_grid()
    assert not any("protocol" in entry for entry in old["components"].values())
    database = build_small(tmp_path, old if grid == "recorded without protocols" else None,
                           specs=None if grid == "recorded without protocols" else
                           {entry["name"]: entry for entry in old["pipelines"]})
    data = load_report_data(database)
    assert protocol_sentence(data) == EXACT
    protocols = pipeline_protocols(data)
    assert protocols["RCAN+MGFF"] == {"RCAN": "exact", "MGFF": "exact"}
    assert {p for components in protocols.values() for p in components.values()} == {"exact"}
    assert recorded_protocol({}, "RCAN") == ("exact", "exact")
    assert recorded_protocol({"grid": {"components": {"RCAN": {"protocol": "official"}}}}, "RCAN") == \
        ("official", "official")


def test_the_comparability_text_of_a_bare_data_object_says_exact():
    """`judge_comparability` is also called with a data object that has only `runs` and `demo_weights`."""
    from types import SimpleNamespace

    from reports.paper_reference import load_paper_reference
    from reports.vs_paper import judge_comparability

    bare = SimpleNamespace(runs=[SimpleNamespace(manifest={"dataset": {"kind": "sice"}})], demo_weights=[])
    judged = judge_comparability(load_paper_reference(), bare, dataset_kind=None, dataset_label="SICE",
                                 convention="paper")
    assert judged.comparable
    assert judged.text.endswith("The paper does not state its inference protocol (each network on the whole image, "
                                "or each method's release script with its tiling and rounding); ours is exact for "
                                "every method (each network on the whole image, its output rounded once to 8 bits).")


# -- two contributing runs that disagree -----------------------------------------------------------------

def two_runs(root: Path) -> tuple[Path, str, str]:
    """An exact run of the whole grid, then `run RCAN+MGFF --protocol official` (its manifest records
    the whole grid, RCAN official): the report takes RCAN+MGFF from the second run, MGFF+RCAN from the
    first."""
    from pipelines.store import ResultsStore

    grid = small_grid()
    names = [entry["name"] for entry in grid["pipelines"]]
    specs = {entry["name"]: entry for entry in grid["pipelines"]}
    means = {name: {"psnr": 15.0 + i, "ssim": 0.6 + 0.01 * i, "mef_ssim": 0.8 + 0.01 * i, "qabf": 0.4 + 0.01 * i}
             for i, name in enumerate(names)}
    scores = fixture_scores(names, means)
    record = {**MANIFEST, "metrics": METRIC_DESCRIPTORS, "demo_weights": []}
    root.mkdir(parents=True, exist_ok=True)
    database = root / "results.sqlite"
    with ResultsStore(database) as store:
        first = _record_run(store, names, scores, 1.0, False, {**record, "grid": with_protocols(grid)}, specs=specs)
        second = _record_run(store, ["RCAN+MGFF"], scores, 1.0, False,
                             {**record, "grid": with_protocols(grid, {"RCAN": "official"}, {"RCAN": "official"})},
                             specs=specs)
    write_images(root, names)
    return database, first, second


def test_two_runs_with_different_protocols_for_one_component_are_reported_per_pipeline(tmp_path):
    from reports.data import load_report_data
    from reports.figure3 import figure_footer
    from reports.protocols import component_protocols, pipeline_protocols, protocol_sentence

    database, first, second = two_runs(tmp_path / "results")
    data = load_report_data(database)
    assert data.method_runs["RCAN+MGFF"] == second and data.method_runs["MGFF+RCAN"] == first
    assert pipeline_protocols(data)["RCAN+MGFF"] == {"RCAN": "official", "MGFF": "exact"}
    assert pipeline_protocols(data)["MGFF+RCAN"] == {"MGFF": "exact", "RCAN": "exact"}
    assert component_protocols(data)["RCAN"] == {"RCAN+MGFF": "official", "MGFF+RCAN": "exact"}
    assert protocol_sentence(data) == PER_PIPELINE
    # a figure of one side only says what that side ran
    assert EXACT in figure_footer(data, 2, "alpha", "paper", ["MGFF+RCAN", "CFANet"])
    assert "official for RCAN (its release script" in figure_footer(data, 2, "alpha", "paper", ["RCAN+MGFF"])
    assert PER_PIPELINE in figure_footer(data, 2, "alpha", "paper", ["RCAN+MGFF", "MGFF+RCAN"])

    result, output = report_of(database, tmp_path / "out")
    found = captions(output)
    assert PER_PIPELINE in table1_figcaption(found["table1.html"]) and PER_PIPELINE in found["table1.tex"]
    assert "RCAN ran official in RCAN+MGFF but exact in MGFF+RCAN" in found["vs_paper.tex"]
    assert summary_protocol(result) == ["protocol: " + PER_PIPELINE.removeprefix("Inference protocol: ")
                                        .rstrip(".")]
    # the first run alone was exact throughout
    only_first = load_report_data(database, run_id=first)
    assert protocol_sentence(only_first) == EXACT
