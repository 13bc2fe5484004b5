"""Registry of methods and the per-scene stage graph of the 34 pipelines."""

from pathlib import Path

import pytest

from pipelines.catalog import all_pipelines, find_pipeline
from pipelines.config import default_config, load_config
from pipelines.graph import build_scene_graph
from pipelines.registry import METHODS, method, weights_status

REPO = Path(__file__).resolve().parents[1]


def _identities():
    return {name: {"config": {"size": "small"}, "weights_sha256": f"sha-{name}"} for name in METHODS}


def test_registry_has_every_method_with_its_kind():
    assert len(METHODS) == 10
    kinds = {name: entry.kind for name, entry in METHODS.items()}
    assert [n for n, k in kinds.items() if k == "sr"] == ["DBPN", "RCAN", "SRFBN", "SwinIR"]
    assert [n for n, k in kinds.items() if k == "joint"] == ["CF-Net", "CFANet"]
    assert method("mgff").name == "MGFF" and not method("MGFF").deep and method("RCAN").deep
    assert not method("U2Fusion").trainable_here and "VGG" in method("U2Fusion").note
    with pytest.raises(KeyError, match="unknown method"):
        method("Mertens")


def test_every_method_class_is_importable():
    for entry in METHODS.values():
        if entry.name == "CFANet":
            continue  # lands with the CFANet issue
        cls = entry.load_class()
        assert cls.name == entry.name


def test_stage_graph_shares_stages_24_sr_20_mef_2_joint():
    graph = build_scene_graph("s", "over-key", "under-key", all_pipelines(), _identities(), "v1")
    assert graph.counts() == {"sr": 24, "mef": 20, "joint": 2}
    assert len(graph.finals) == 34
    # SR+MEF: the MEF stage reads the two SR stages of the same model
    final = graph.stages[graph.finals["RCAN+MGFF"]]
    assert final.method == "MGFF" and [graph.stages[k].method for k in final.inputs] == ["RCAN", "RCAN"]
    # MEF+SR: the SR stage reads the MEF stage on the LR pair
    final = graph.stages[graph.finals["MGFF+RCAN"]]
    assert final.method == "RCAN" and graph.stages[final.inputs[0]].inputs == ("over-key", "under-key")
    # the fused LR pair of MGFF is one stage shared by all four MEF+SR pipelines
    assert len({graph.stages[graph.finals[f"MGFF+{sr}"]].inputs[0] for sr in ("DBPN", "RCAN", "SRFBN", "SwinIR")}) == 1


def test_stages_of_one_pipeline_and_key_sensitivity():
    graph = build_scene_graph("s", "o", "u", all_pipelines(), _identities(), "v1")
    stages = graph.stages_of(["RCAN+MGFF"])
    assert [s.method for s in stages] == ["RCAN", "RCAN", "MGFF"]
    assert [s.method for s in graph.stages_of(["CFANet"])] == ["CFANet"]
    changed = _identities()
    changed["RCAN"] = {**changed["RCAN"], "weights_sha256": "other"}
    other = build_scene_graph("s", "o", "u", all_pipelines(), changed, "v1")
    assert other.finals["RCAN+MGFF"] != graph.finals["RCAN+MGFF"]
    assert other.finals["SRFBN+MGFF"] == graph.finals["SRFBN+MGFF"]


def test_find_pipeline():
    assert find_pipeline("rcan+mgff").name == "RCAN+MGFF"
    with pytest.raises(KeyError, match="did you mean"):
        find_pipeline("RCAN+MGF")


def test_weights_status_by_profile(tmp_path):
    demo = default_config().profile()
    assert weights_status(demo, "MGFF", 2) is None
    assert weights_status(demo, "RCAN", 2).source == "demo"
    paper = load_config(REPO / "benchmark.toml").profile("paper")
    status = weights_status(paper, "RCAN", 4)
    assert status.source == "configured" and status.key == "RCAN.x4" and status.path.name == "RCAN_BIX4.pt"
    assert not status.found
