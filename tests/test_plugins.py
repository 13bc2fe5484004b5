"""Your own method in the comparison without editing the package: a method from an installed
distribution (entry point `cfanet_bench.methods`) and one declared in `benchmark.toml` appear in
`list`, run through `run` and `run-all` (a profile's `[grid]`), land in Table 1 and work with `apply`."""

from __future__ import annotations

import csv
import json
import textwrap

import cv2
import numpy as np
import pytest

from pipelines import registry
from pipelines.cli import main

PLUGIN = '''
import torch
import torch.nn.functional as F

from cfanet.methods import register_method


@register_method("joint", deep=False)
class PlugJoint:
    """Nearest-neighbour upscaling of the brighter exposure, per pixel."""

    name = "Plug-Joint"

    def __init__(self, scale: int = 2):
        self.scale = scale

    def fuse_upscale(self, over, under):
        return F.interpolate(torch.maximum(over, under), scale_factor=self.scale, mode="nearest")


class Nearest:
    """No descriptor: benchmark.toml gives its kind."""

    def __init__(self, scale: int = 2):
        self.scale = scale

    def upscale(self, lr):
        return F.interpolate(lr, scale_factor=self.scale, mode="nearest")
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A distribution `plug-demo` installed on sys.path with one entry point."""
    site = tmp_path / "site"
    (site / "plug_demo").mkdir(parents=True)
    (site / "plug_demo" / "__init__.py").write_text("")
    (site / "plug_demo" / "methods.py").write_text(PLUGIN)
    info = site / "plug_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plug-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[cfanet_bench.methods]\nPlug-Joint = plug_demo.methods:PlugJoint\n")
    monkeypatch.syspath_prepend(str(site))
    registry.plugin_methods.cache_clear()
    yield site
    registry.plugin_methods.cache_clear()


def _config(tmp_path, grid: str = "") -> str:
    path = tmp_path / "bench.toml"
    path.write_text(textwrap.dedent(f"""
        [methods.Plug-Nearest]
        target = "plug_demo.methods:Nearest"
        kind = "sr"

        [profiles.demo]
        output_dir = "{tmp_path / 'out'}"
        cache_dir = "{tmp_path / 'cache'}"
        [profiles.demo.dataset]
        num_scenes = 2
        hr_size = 48
        {grid}
    """))
    return str(path)


def _table1_rows(tmp_path) -> list[str]:
    with open(tmp_path / "out" / "report" / "table1_x2.csv", newline="") as handle:
        return [row["method"] for row in csv.DictReader(handle)]


def test_plugin_and_config_methods_in_list_run_and_table1(plugin, tmp_path, capsys):
    config = _config(tmp_path)
    assert main(["--config", config, "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)["methods"]
    assert listing["Plug-Joint"]["source"] == "entry point Plug-Joint" and listing["Plug-Joint"]["kind"] == "joint"
    assert listing["Plug-Nearest"]["kind"] == "sr" and "bench.toml" in listing["Plug-Nearest"]["source"]
    assert not listing["Plug-Joint"]["in_grid"] and listing["CFANet"]["in_grid"]

    assert main(["--config", config, "run", "Plug-Joint", "MGFF+Plug-Nearest", "Plug-Nearest+MGFF"]) == 0
    capsys.readouterr()
    assert main(["--config", config, "report"]) == 0
    rows = _table1_rows(tmp_path)
    assert {"Plug-Joint", "MGFF+Plug-Nearest", "Plug-Nearest+MGFF"} <= set(rows)
    image = tmp_path / "out" / "images" / "x2" / "Plug-Joint"
    assert len(list(image.glob("*.png"))) == 2


def test_profile_grid_chooses_the_compared_methods(plugin, tmp_path, capsys):
    grid = ('[profiles.demo.grid]\nsr = ["Plug-Nearest"]\nmef = ["MGFF", "Fast-SPD-MEF"]\n'
            'joint = ["Plug-Joint"]')
    config = _config(tmp_path, grid)
    assert main(["--config", config, "list", "--json"]) == 0
    pipelines = [p["name"] for p in json.loads(capsys.readouterr().out)["pipelines"]]
    expected = ["Plug-Nearest+MGFF", "Plug-Nearest+Fast-SPD-MEF", "MGFF+Plug-Nearest", "Fast-SPD-MEF+Plug-Nearest",
                "Plug-Joint"]
    assert pipelines == expected
    assert main(["--config", config, "run-all"]) == 0
    capsys.readouterr()
    assert main(["--config", config, "report"]) == 0
    assert _table1_rows(tmp_path) == expected


def test_plugin_methods_work_with_apply(plugin, tmp_path, capsys):
    config = _config(tmp_path)
    rng = np.random.default_rng(0)
    for name in ("o", "u"):
        cv2.imwrite(str(tmp_path / f"{name}.png"), rng.integers(0, 256, (10, 12, 3), dtype=np.uint8))
    assert main(["--config", config, "apply", "Plug-Joint", "--over", str(tmp_path / "o.png"), "--under",
                 str(tmp_path / "u.png"), "-o", str(tmp_path / "j.png")]) == 0
    assert main(["--config", config, "apply", "plug-nearest", "--input", str(tmp_path / "o.png"), "--scale", "4",
                 "-o", str(tmp_path / "n.png")]) == 0
    assert cv2.imread(str(tmp_path / "j.png")).shape == (20, 24, 3)
    assert cv2.imread(str(tmp_path / "n.png")).shape == (40, 48, 3)


def test_bad_plugins_are_errors_naming_them(plugin, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[methods.Broken]\ntarget = "plug_demo.methods:Missing"\nkind = "mef"\n')
    assert main(["--config", str(bad), "list"]) == 2
    assert "methods.Broken.target" in capsys.readouterr().err
    bad.write_text('[methods.NoKind]\ntarget = "plug_demo.methods:Nearest"\n')
    assert main(["--config", str(bad), "list"]) == 2
    err = capsys.readouterr().err
    assert "methods.NoKind" in err and "give its kind" in err
    bad.write_text('[methods.MGFF]\ntarget = "plug_demo.methods:Nearest"\nkind = "sr"\n')
    assert main(["--config", str(bad), "list"]) == 2
    assert "clashes" in capsys.readouterr().err
    bad.write_text('[profiles.demo.grid]\nsr = ["EDSR"]\n')
    assert main(["--config", str(bad), "list"]) == 2
    assert "profiles.demo.grid.sr[0]: unknown method 'EDSR'" in capsys.readouterr().err
