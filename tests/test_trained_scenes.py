"""A run refuses to score a method on scenes its weights were trained on (unless told to), and the
manifest records any overlap it was told to accept."""

import json
import sqlite3

import pytest

from cfanet.network import CFANet
from pipelines.cli import main
from pipelines.model_files import trained_scenes


def _config(tmp_path, weights):
    path = tmp_path / "b.toml"
    path.write_text(f"""
[profiles.demo]
output_dir = "{tmp_path / 'out'}"
cache_dir = "{tmp_path / 'cache'}"
[profiles.demo.dataset]
num_scenes = 2
hr_size = 48
[profiles.demo.weights]
"CFANet.x2" = "{weights}"
""")
    return path


def _weights(tmp_path, name, **recorded):
    return CFANet.create(2, "small", seed=0).save(tmp_path / name, **recorded)


def test_trained_scenes_are_read_from_training_checkpoints(tmp_path):
    path = _weights(tmp_path, "w.pt", train_scenes=["a", "b"], val_scenes=["c"])
    assert trained_scenes(path) == {"train": ["a", "b"], "val": ["c"]}
    assert trained_scenes(_weights(tmp_path, "plain.pt")) == {}
    (tmp_path / "tf.ckpt").write_bytes(b"not a torch file")
    assert trained_scenes(tmp_path / "tf.ckpt") == {}


def test_run_refuses_trained_scenes_and_the_override_records_them(tmp_path, capsys):
    weights = _weights(tmp_path, "cfanet.pt", train_scenes=["coffee-00", "elsewhere-9"], val_scenes=["other"])
    config = _config(tmp_path, weights)
    assert main(["--config", str(config), "run", "CFANet", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "trained on scenes this run would score" in err
    assert "coffee-00" in err and "elsewhere-9" not in err and "--allow-trained-scenes" in err
    assert not (tmp_path / "out" / "images").exists()  # refused before any stage ran

    assert main(["--config", str(config), "run", "CFANet", "--no-report", "--allow-trained-scenes"]) == 0
    out = capsys.readouterr().out
    assert "warning: scoring methods on scenes their weights were trained on" in out
    manifest = json.loads(sqlite3.connect(tmp_path / "out" / "results.sqlite")
                          .execute("SELECT manifest FROM runs ORDER BY rowid DESC LIMIT 1").fetchone()[0])
    assert manifest["trained_scene_overlap"] == {"CFANet.x2": {"train": ["coffee-00"]}}


def test_weights_trained_elsewhere_run_without_a_word(tmp_path, capsys):
    weights = _weights(tmp_path, "cfanet.pt", train_scenes=["Part1/5"], val_scenes=["Part2/7"])
    assert main(["--config", str(_config(tmp_path, weights)), "run", "CFANet", "--no-report"]) == 0
    assert "trained on" not in capsys.readouterr().out
