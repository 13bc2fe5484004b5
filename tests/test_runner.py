"""The runner: stage caching, reruns, --force, results store, and the paper profile's early failure.

Demo weights here are seeded small models written by `seeded_weights` (the engine is under test, not
training; tests/test_training.py covers the trainer).
"""

import json
import sqlite3
from pathlib import Path

import pytest

from pipelines.config import ConfigError, parse_config
from pipelines.runner import Runner
from pipelines.demo_training import seeded_demo_weights as seeded_weights
from pipelines.weights import checkpoint_metadata

PIPELINES = ["SRFBN+MGFF", "MGFF+SRFBN", "Fast-SPD-MEF+DBPN", "CF-Net"]


def _config(tmp_path, extra=""):
    text = f"""
[profiles.demo]
output_dir = "{tmp_path / 'out'}"
cache_dir = "{tmp_path / 'cache'}"
[profiles.demo.dataset]
num_scenes = 2
hr_size = 64
{extra}
"""
    import tomllib

    return parse_config(tomllib.loads(text), source="test.toml", base_dir=tmp_path)


def _runner(tmp_path):
    return Runner(_config(tmp_path), weights_trainer=seeded_weights, show_progress=False, log=lambda *_: None)


def test_cold_then_warm_run_and_results(tmp_path):
    cold = _runner(tmp_path).run(PIPELINES)
    # 2 scenes: SRFBN x2 exposures, MGFF on SR pair, MGFF on LR pair, SRFBN on fused, FSPD on LR, DBPN, CF-Net
    assert cold.stages_total == 2 * 8 and cold.stages_computed == 16
    warm = _runner(tmp_path).run(PIPELINES)
    assert warm.stages_computed == 0 and sorted(warm.results) == sorted(cold.results)
    rows = {(scene, m, metric, conv) for scene, m, metric, conv, _ in cold.results}
    assert ("x2/coffee-00", "SRFBN+MGFF", "psnr", "paper") in rows and ("x2/chelsea-01", "CF-Net", "mef_ssim", "official") in rows
    assert ("x2/coffee-00", "CF-Net", "ssim", "sr") in rows
    image = tmp_path / "out" / "images" / "x2" / "MGFF+SRFBN" / "coffee-00.png"
    assert image.is_file()
    connection = sqlite3.connect(cold.database)
    runs = connection.execute("SELECT status, manifest FROM runs").fetchall()
    assert [r[0] for r in runs] == ["finished", "finished"]
    manifest = json.loads(runs[0][1])
    assert manifest["stages_computed"] == 16 and manifest["weights"]["SRFBN.x2"]["source"] == "demo"
    assert "SRFBN" in manifest["demo_weights"] and manifest["packages"]["torch"]
    timings = connection.execute("SELECT COUNT(*), SUM(cached) FROM stage_timings").fetchone()
    assert timings == (32, 16)


def test_rerun_one_pipeline_and_force(tmp_path):
    _runner(tmp_path).run(PIPELINES)
    again = _runner(tmp_path).run(["MGFF+SRFBN"])
    assert again.stages_total == 4 and again.stages_computed == 0
    forced = _runner(tmp_path).run(["MGFF+SRFBN"], force=True)
    assert forced.stages_computed == 4
    # forcing one pipeline recomputed only its stages (MGFF on the LR pair, SRFBN on the fused image)
    cached_stages = list((tmp_path / "cache" / "stages").rglob("*.png"))
    assert len(cached_stages) == 16


def test_weights_are_trained_once_and_labelled(tmp_path):
    calls = []

    def counting(entry, scale, profile, path, device):
        calls.append(entry.name)
        seeded_weights(entry, scale, profile, path, device)

    for _ in range(2):
        Runner(_config(tmp_path), weights_trainer=counting, show_progress=False, log=lambda *_: None).run(["CF-Net"])
    assert calls == ["CF-Net"]
    [weights] = (tmp_path / "cache" / "demo_weights").glob("CF-Net_x2_*.pt")
    assert checkpoint_metadata(weights)["demo"] is True


def test_paper_profile_fails_early_naming_every_missing_file(tmp_path):
    import tomllib

    text = f"""
default_profile = "paper"
[profiles.paper]
model_size = "official"
output_dir = "{tmp_path / 'out'}"
[profiles.paper.dataset]
kind = "sice"
root = "{tmp_path / 'SICE'}"
[profiles.paper.weights]
"RCAN.x2" = "{tmp_path / 'RCAN_BIX2.pt'}"
"""
    config = parse_config(tomllib.loads(text), source="paper.toml", base_dir=tmp_path)
    runner = Runner(config, "paper", show_progress=False, log=lambda *_: None)
    with pytest.raises(ConfigError) as info:
        runner.run()
    message = str(info.value)
    assert str(tmp_path / "SICE") in message and "RCAN_BIX2.pt" in message
    assert 'weights."SwinIR.x2" not configured' in message and 'weights."CFANet.x2"' in message
    assert not (tmp_path / "out").exists()  # nothing was started


RUN_SCRIPT = """
import sys, tomllib
sys.path.insert(0, {tests!r})
from test_runner import _config, seeded_weights, PIPELINES
from pathlib import Path
from pipelines.runner import Runner
Runner(_config(Path({root!r})), weights_trainer=seeded_weights, show_progress=False, log=lambda *_: None).run(PIPELINES)
"""


def test_killed_run_resumes_without_recomputing_and_gives_identical_results(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    tests = str(Path(__file__).resolve().parent)
    killed_root, clean_root = tmp_path / "killed", tmp_path / "clean"
    script = RUN_SCRIPT.format(tests=tests, root=str(killed_root))
    process = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    stages = killed_root / "cache" / "stages"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(stages.rglob("*.json"))) < 5 and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(list(stages.rglob("*.json")))
    assert 0 < done_before < 16, "the run should have been killed part-way"

    resumed = Runner(_config(killed_root), weights_trainer=seeded_weights, show_progress=False,
                     log=lambda *_: None).run(PIPELINES)
    assert resumed.stages_computed == 16 - done_before
    clean = Runner(_config(clean_root), weights_trainer=seeded_weights, show_progress=False,
                   log=lambda *_: None).run(PIPELINES)
    assert sorted(resumed.results) == sorted(clean.results)


def test_every_setting_that_can_move_an_output_is_in_the_stage_key(tmp_path):
    """Tile size and overlap, precision (through the methods' options), batch size and, on the CPU,
    the thread count change outputs by up to an 8-bit level (tests/test_method_interface.py,
    tests/test_executors.py): each is in the key; settings that cannot change pixels are not."""
    import torch

    def identity(extra="", method="SRFBN"):
        return Runner(_config(tmp_path, extra), weights_trainer=seeded_weights, show_progress=False,
                      log=lambda *_: None).identity(method, 2)

    base = identity()
    assert base["config"]["device"] == "cpu" and base["config"]["threads"] == torch.get_num_threads()
    for setting in ("[profiles.demo.runtime]\ntile_size = 64", "[profiles.demo.runtime]\nbatch_size = 2",
                    "[profiles.demo.runtime]\ntile_size = 64\ntile_overlap = 40"):
        assert identity(setting) != base, setting
    assert identity("[profiles.demo.runtime]\ntile_size = 64") == identity("[profiles.demo.runtime]\ntile_size = 64")
    # a method that does not tile ignores the tile size: its key stays
    assert identity("[profiles.demo.runtime]\ntile_size = 64", "MGFF") == identity("", "MGFF")
    # settings that change no pixel: workers, executor addresses
    assert identity("[profiles.demo.runtime]\nworkers = 3") == base
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if threads > 1 else 2)
        assert identity() != base
    finally:
        torch.set_num_threads(threads)


# -- scoring through the executor ------------------------------------------------------------------

def _exact(rows) -> list:
    """Result rows with values as their exact text (NaN != NaN)."""
    return sorted((*row[:4], repr(row[4])) for row in rows)


def test_a_warm_run_computes_no_metric_and_records_the_scoring_time(tmp_path, monkeypatch):
    import shutil

    import pipelines.score_tasks as score_tasks
    from cfanet.metrics.registry import metric_names
    from pipelines.runner import ScoringError

    images = 2 * len(PIPELINES)
    cold = _runner(tmp_path).run(PIPELINES)
    assert cold.scores_total == cold.scores_computed == images and cold.score_batches >= 1
    assert set(cold.metric_seconds) == set(metric_names()) and cold.score_seconds > 0
    assert len(list((tmp_path / "cache" / "metrics").rglob("*.json"))) == images

    def fail(*args, **kwargs):
        raise AssertionError("a warm run computed a metric value")

    with monkeypatch.context() as patched:
        patched.setattr(score_tasks, "score_batch", fail)
        patched.setattr(Runner, "_executor", lambda self, name: pytest.fail("a warm run started an executor"))
        warm = _runner(tmp_path).run(PIPELINES)
    assert warm.scores_computed == 0 and warm.scores_total == images and _exact(warm.results) == _exact(cold.results)
    manifests = [json.loads(m) for (m,) in sqlite3.connect(cold.database).execute(
        "SELECT manifest FROM runs ORDER BY started")]
    scoring = [m["scoring"] for m in manifests]
    assert [(s["images"], s["computed"]) for s in scoring] == [(images, images), (images, 0)]
    assert set(scoring[0]["metric_seconds"]) == set(metric_names()) and scoring[1]["metric_seconds"] == {}
    assert 0 < scoring[0]["compute_seconds"] <= scoring[0]["wall_seconds"] <= manifests[0]["wall_seconds"]

    # metric values computed again (their cache removed): the same floats, and no stage recomputed
    shutil.rmtree(tmp_path / "cache" / "metrics")
    again = _runner(tmp_path).run(PIPELINES)
    assert again.stages_computed == 0 and again.scores_computed == images
    assert _exact(again.results) == _exact(cold.results)

    # a failing metric stops the run with one line naming the scenes and pipelines of its batch
    shutil.rmtree(tmp_path / "cache" / "metrics")
    monkeypatch.setattr(score_tasks, "score_batch", lambda *a, **k: (_ for _ in ()).throw(ValueError("bad pixels")))
    with pytest.raises(ScoringError, match=r"^scene 'coffee-00'; scene 'chelsea-01': scoring SRFBN\+MGFF, .*CF-Net "
                                           r"failed: bad pixels; the metric values of the 0 image\(s\)"):
        _runner(tmp_path).run(PIPELINES)


KILL_WHILE_SCORING = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from pathlib import Path
import pipelines.runner as runner
from test_runner import _config, seeded_weights, PIPELINES
runner.score_batch_size = lambda runtime: 2  # four score batches of two images
real, written = runner.store_scores, []
def store_or_die(cache_dir, key, values):
    if len(written) == 4:  # two batches written: killed while the third is being written
        os.kill(os.getpid(), signal.SIGKILL)
    real(cache_dir, key, values)
    written.append(key)
runner.store_scores = store_or_die
runner.Runner(_config(Path({root!r})), weights_trainer=seeded_weights, show_progress=False,
              log=lambda *_: None).run(PIPELINES)
"""


def test_a_run_killed_while_scoring_keeps_its_finished_metric_values(tmp_path):
    import shutil
    import signal
    import subprocess
    import sys

    clean = _runner(tmp_path).run(PIPELINES)
    shutil.rmtree(tmp_path / "cache" / "metrics")
    script = KILL_WHILE_SCORING.format(tests=str(Path(__file__).resolve().parent), root=str(tmp_path))
    killed = subprocess.run([sys.executable, "-c", script], timeout=900)
    assert killed.returncode == -signal.SIGKILL
    assert len(list((tmp_path / "cache" / "metrics").rglob("*.json"))) == 4
    resumed = _runner(tmp_path).run(PIPELINES)
    assert resumed.stages_computed == 0 and resumed.scores_computed == 2 * len(PIPELINES) - 4
    assert _exact(resumed.results) == _exact(clean.results)
    statuses = [s for (s,) in sqlite3.connect(clean.database).execute("SELECT status FROM runs ORDER BY started")]
    assert statuses == ["finished", "running", "finished"]
