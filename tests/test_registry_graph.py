"""The method registry (descriptors next to the models), the profile's grid and the per-scene stage graph."""

from pathlib import Path

import pytest

from cfanet.methods import CALLS, MethodError, MethodSpec, register_method
from pipelines.catalog import Grid, find_pipeline, paper_grid, profile_grid
from pipelines.config import ConfigError, GridConfig, default_config, load_config
from pipelines.graph import build_scene_graph
from pipelines.registry import builtin_methods, method, methods, weights_status

REPO = Path(__file__).resolve().parents[1]
# The paper's comparison (its Table 1), in its order.
PAPER = {"sr": ["DBPN", "RCAN", "SRFBN", "SwinIR"], "mef": ["MGFF", "Fast-SPD-MEF", "MEF-Net", "U2Fusion"],
         "joint": ["CF-Net", "CFANet"]}


def _identities(table):
    return {name: {"config": {"size": "small"}, "weights_sha256": f"sha-{name}", "code": "c"} for name in table.specs}


def test_builtin_descriptors_declared_next_to_the_models():
    table = methods()
    for kind, names in PAPER.items():
        assert [s.name for s in table.of_kind(kind) if s.paper_order is not None] == names
    for spec in builtin_methods():
        assert spec.cls.method_spec is spec and spec.cls.__module__ == spec.module
        assert callable(getattr(spec.cls, CALLS[spec.kind]))
        if spec.deep:
            assert {"official", "small"} <= set(spec.configs)
    assert method("mgff").name == "MGFF" and not method("MGFF").deep and method("RCAN").deep
    assert not method("U2Fusion").trainable and "VGG" in method("U2Fusion").not_trainable
    assert method("MEF-Net").weight_keys((2, 4)) == ["MEF-Net"] and method("RCAN").weight_keys((2, 4)) == ["RCAN.x2", "RCAN.x4"]
    assert [s.name for s in builtin_methods() if s.proposed] == ["CFANet"]
    with pytest.raises(KeyError, match="unknown method"):
        method("Mertens")


def test_runtime_options_reach_methods_by_capability():
    tiling = [s for s in builtin_methods() if s.tiles]
    assert {"RCAN", "CF-Net", "CFANet", "U2Fusion"} <= {s.name for s in tiling}
    for spec in builtin_methods():
        options = spec.runtime_options(tile=48, tile_overlap=8, precision="bf16")
        assert ("tile" in options) == spec.tiles and ("precision" in options) == ("bf16" in spec.autocast_dtypes)


def test_descriptor_checks_the_class():
    class NoCall:
        name = "Broken"

    with pytest.raises(MethodError, match="no `fuse`"):
        register_method("mef")(NoCall)
    with pytest.raises(MethodError, match="kind"):
        MethodSpec("X", "denoise", NoCall)
    with pytest.raises(MethodError, match="'\\+'"):
        MethodSpec("A+B", "mef", type("C", (), {"fuse": lambda self, a, b: a}))


def test_stage_graph_shares_stages():
    table = methods()
    grid = paper_grid(table)
    s, m, j = len(grid.sr), len(grid.mef), len(grid.joint)
    graph = build_scene_graph("s", "over-key", "under-key", grid.pipelines(), _identities(table))
    assert graph.counts() == {"sr": 2 * s + s * m, "mef": m + s * m, "joint": j}
    assert len(graph.finals) == 2 * s * m + j == len(grid.pipelines())
    # SR+MEF: the MEF stage reads the two SR stages of the same model
    final = graph.stages[graph.finals["RCAN+MGFF"]]
    assert final.method == "MGFF" and [graph.stages[k].method for k in final.inputs] == ["RCAN", "RCAN"]
    # MEF+SR: the SR stage reads the MEF stage on the LR pair
    final = graph.stages[graph.finals["MGFF+RCAN"]]
    assert final.method == "RCAN" and graph.stages[final.inputs[0]].inputs == ("over-key", "under-key")
    # the fused LR pair of MGFF is one stage shared by every MEF+SR pipeline
    assert len({graph.stages[graph.finals[f"MGFF+{sr}"]].inputs[0] for sr in grid.sr}) == 1


def test_stages_of_one_pipeline_and_key_sensitivity():
    table = methods()
    pipelines = paper_grid(table).pipelines()
    graph = build_scene_graph("s", "o", "u", pipelines, _identities(table))
    stages = graph.stages_of(["RCAN+MGFF"])
    assert [s.method for s in stages] == ["RCAN", "RCAN", "MGFF"]
    assert [s.method for s in graph.stages_of(["CFANet"])] == ["CFANet"]
    for field, value in (("weights_sha256", "other"), ("code", "edited"), ("config", {"size": "small", "tile": 64})):
        changed = _identities(table)
        changed["RCAN"] = {**changed["RCAN"], field: value}
        other = build_scene_graph("s", "o", "u", pipelines, changed)
        assert other.finals["RCAN+MGFF"] != graph.finals["RCAN+MGFF"]
        assert other.finals["SRFBN+MGFF"] == graph.finals["SRFBN+MGFF"]


def test_profile_grid_selection_and_errors():
    table = methods()
    assert profile_grid(table, GridConfig()) == paper_grid(table)
    small = profile_grid(table, GridConfig(sr=("rcan",), mef=("MGFF", "MEF-Net"), joint=()))
    assert small == Grid(("RCAN",), ("MGFF", "MEF-Net"), ())
    assert [p.name for p in small.pipelines()] == ["RCAN+MGFF", "RCAN+MEF-Net", "MGFF+RCAN", "MEF-Net+RCAN"]
    with pytest.raises(ConfigError, match=r"t.toml: profiles.demo.grid.sr\[1\]: unknown method 'EDSR'"):
        profile_grid(table, GridConfig(sr=("RCAN", "EDSR")), "t.toml", "demo")
    with pytest.raises(ConfigError, match="MGFF is a mef method, not sr"):
        profile_grid(table, GridConfig(sr=("MGFF",)))


def test_find_pipeline_any_composition():
    table = methods()
    grid = Grid(("RCAN",), ("MGFF",), ())
    assert find_pipeline("rcan+mgff", table, grid).name == "RCAN+MGFF"
    outside = find_pipeline("swinir+u2fusion", table, grid)
    assert (outside.name, outside.order, outside.sr, outside.mef) == ("SwinIR+U2Fusion", "SR+MEF", "SwinIR", "U2Fusion")
    assert find_pipeline("MEF-Net+DBPN", table, grid).order == "MEF+SR"
    assert find_pipeline("cfanet", table, grid).joint == "CFANet"
    with pytest.raises(KeyError, match="did you mean"):
        find_pipeline("RCAN+MGF", table, grid)
    with pytest.raises(KeyError, match="unknown method"):
        find_pipeline("RCAN+SwinIR", table, grid)


def test_weights_status_by_profile(tmp_path):
    demo = default_config().profile()
    assert weights_status(demo, method("MGFF"), 2) is None
    assert weights_status(demo, method("RCAN"), 2).source == "demo"
    paper = load_config(REPO / "benchmark.toml").profile("paper-x4")
    status = weights_status(paper, method("RCAN"), 4)
    assert status.source == "configured" and status.key == "RCAN.x4" and status.path.name == "RCAN_BIX4.pt"
    assert not status.found
