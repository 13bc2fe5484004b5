"""Smoke test of `benchmarks/paper_scale.py`: its main function on the CPU with one synthetic SICE
scene of a tiny size and three pipelines (official configurations, random weights in the released
containers: SRFBN's and MEF-Net's training checkpoints, CFANet's trainer file),
through the real runner; the JSON holds every stage kind with positive rates and the projection."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("paper_scale_benchmark", REPO / "benchmarks" / "paper_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_paper_scale_benchmark_on_one_tiny_scene(tmp_path, capsys):
    benchmark = _load_benchmark()
    out = tmp_path / "paper_scale.json"
    pipelines = ["SRFBN+MGFF", "MEF-Net+SRFBN", "CFANet"]
    result = benchmark.main(["--scenes", "1", "--long-side", "64", "--device", "cpu", "--warmup", "0",
                             "--methods", *pipelines, "--k", "1", "4", "--json", str(out)])
    printed = capsys.readouterr().out
    stored = json.loads(out.read_text())
    assert stored["settings"]["pipelines"] == pipelines == result["settings"]["pipelines"]
    assert stored["settings"]["hr_size"] == [36, 64]
    assert stored["settings"]["containers"] == {"SRFBN.x2": "release", "MEF-Net": "release", "CFANet.x2": "release"}

    for kind in ("sr", "mef", "joint", "metrics"):
        entry = stored["kinds"][kind]
        assert entry["stages"] > 0 and entry["seconds"] > 0 and entry["images_per_second"] > 0, kind
        assert 0 < entry["share_of_wall"] < 1, kind
    # SR on both exposures (SRFBN+MGFF) and on the fused pair (MEF-Net+SRFBN); one MEF stage each
    assert stored["kinds"]["sr"]["stages"] == 3
    assert stored["kinds"]["mef-classical"]["stages"] == stored["kinds"]["mef-deep"]["stages"] == 1
    assert stored["kinds"]["metrics"]["stages"] == len(pipelines)
    assert {(m["method"], m["input"]) for m in stored["methods"]} == {
        ("SRFBN", "LR"), ("MGFF", "HR"), ("MEF-Net", "LR"), ("CFANet", "LR")}
    assert stored["run"]["stages_computed"] == 6

    targets = stored["projection"]["targets"]
    counts = {entry["scenes"] for entry in targets.values()}
    assert {589, 100} <= counts
    for entry in targets.values():
        one, four = entry["seconds"]["1"], entry["seconds"]["4"]
        assert one > four > 0
    assert stored["goal"]["complete_grid"] is False and "projected_seconds" in stored["goal"]
    assert "stage kind" in printed and "torch" in printed and "verdict" in printed
