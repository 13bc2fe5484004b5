"""The paper's flow on a SICE-shaped fixture made from real SICE scenes (../shared/data/sice400):
two parts numbered from 1, each with its own Label folder; `train CFANet --preset paper` for a few
steps on the training scenes; `run-all` on the test split (every method of the paper's grid, the
trained CFANet among them, report included); and the refusal to score those weights on their own
training scenes."""

import json
import sqlite3

import numpy as np
import pytest
from PIL import Image

from grid_counts import paper_counts
from pipelines.cli import main
from pipelines.model_files import trained_scenes

# (part, number) <- sice400 scene; SICE numbers each part from 1, so Part1/1 and Part2/1 both exist
LAYOUT = {("Part1", "1"): "textmef-001", ("Part1", "2"): "textmef-002", ("Part2", "1"): "textmef-003"}


@pytest.fixture
def sice_fixture(shared_data, tmp_path):
    root = tmp_path / "SICE"
    for (part, number), source in LAYOUT.items():
        folder = shared_data / "sice400" / source
        over = np.asarray(Image.open(folder / "over.png").convert("RGB"))
        under = np.asarray(Image.open(folder / "under.png").convert("RGB"))
        sequence = root / part / number
        sequence.mkdir(parents=True)
        # a SICE sequence holds several exposures; the extremes are chosen by brightness
        for name, image in (("1.png", under), ("2.png", ((over.astype(np.uint16) + under) // 2).astype(np.uint8)),
                            ("3.png", over)):
            Image.fromarray(image).save(sequence / name)
        labels = root / part / "Label"
        labels.mkdir(exist_ok=True)
        Image.open(folder / "gt.png").convert("RGB").save(labels / f"{number}.png")
    (tmp_path / "test.txt").write_text("# test split\nPart2/1\n")
    (tmp_path / "train.txt").write_text("Part1/1\nPart1/2\n")
    return root


def _config(tmp_path, root, weights=None):
    def profile(name, split):
        return f"""
[profiles.{name}]
scales = [2]
model_size = "small"
output_dir = "{tmp_path / ('out-' + name)}"
cache_dir = "{tmp_path / 'cache'}"
[profiles.{name}.dataset]
kind = "sice"
root = "{root}"
hr_long_side = 128
split_file = "{tmp_path / split}"
[profiles.{name}.demo_training]
steps = 2
""" + (f'[profiles.{name}.weights]\n"CFANet.x2" = "{weights}"\n' if weights else "")

    path = tmp_path / "benchmark.toml"
    path.write_text('default_profile = "sice"\n' + profile("sice", "test.txt") + profile("sice-train", "train.txt"))
    return path


def test_train_preset_paper_then_run_all_on_the_test_split_and_refusal_on_the_train_split(
        sice_fixture, tmp_path, capsys):
    config = _config(tmp_path, sice_fixture)
    trained = tmp_path / "trained"
    assert main(["--config", str(config), "train", "CFANet", "--preset", "paper", "--size", "small",
                 "--steps", "2", "--patch-size", "16", "--output", str(trained), "--no-progress"]) == 0
    recorded = trained_scenes(trained / "best.pt")
    assert sorted(recorded["train"] + recorded["val"]) == ["Part1/1", "Part1/2"]  # never the test scene

    config = _config(tmp_path, sice_fixture, weights=trained / "best.pt")
    capsys.readouterr()
    assert main(["--config", str(config), "run-all"]) == 0
    out = capsys.readouterr().out
    index = tmp_path / "out-sice" / "report" / "index.html"
    assert index.is_file() and str(index) in out
    rows = sqlite3.connect(tmp_path / "out-sice" / "results.sqlite").execute(
        "SELECT DISTINCT scene, method FROM results WHERE metric = 'psnr'").fetchall()
    assert {scene for scene, _ in rows} == {"x2/Part2/1"}
    assert len({method for _, method in rows}) == paper_counts().pipelines
    assert (tmp_path / "out-sice" / "images" / "x2" / "CFANet" / "Part2" / "1.png").is_file()

    assert main(["--config", str(config), "run", "CFANet", "--profile", "sice-train", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "trained on scenes this run would score" in err and "Part1/" in err
    manifest = json.loads(sqlite3.connect(tmp_path / "out-sice" / "results.sqlite")
                          .execute("SELECT manifest FROM runs ORDER BY rowid DESC LIMIT 1").fetchone()[0])
    assert manifest["trained_scene_overlap"] == {}
