"""Executors: batching of equal-size scenes, and the Ray executor landing exactly what the local one does.

The Ray tests start a local Ray instance on the CPU (the extra `distributed`; CI installs it). The
equivalence test runs all 34 pipelines on three demo scenes with each executor into separate
folders and compares the results tables, the stage cache (keys and PNG bytes), the metric cache
(keys and records: metric values are computed by the executors too) and the published images,
then checks that a run can resume from the other executor's cache. Score batches sent straight to
each executor give the same floats, bit for bit, as the driver-side scoring.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import tomllib
from pathlib import Path

import pytest
import torch

from pipelines.config import ConfigError, parse_config
from pipelines.executors import BatchError, LocalExecutor, RayExecutor, StageBatch
from pipelines.graph import Stage
from grid_counts import paper_counts
from pipelines.planning import scan_scenes, stage_batches
from pipelines.datasets import open_profile_dataset
from pipelines.runner import Runner, StageError, batch_failure

from test_runner import seeded_weights

HAVE_RAY = importlib.util.find_spec("ray") is not None


def needs_ray():
    """Skip without Ray, except in CI, where the extra is installed and the test must run."""
    if not HAVE_RAY:
        if os.environ.get("CI"):
            pytest.fail("Ray is not installed in CI: .ci/run must install the 'distributed' extra")
        pytest.skip("Ray is not installed (pip install -e '.[distributed]')")


def _config(root: Path, batch_size: int = 2, scenes: int = 3, extra: str = ""):
    text = f"""
[profiles.demo]
output_dir = "{root / 'out'}"
cache_dir = "{root / 'cache'}"
[profiles.demo.dataset]
num_scenes = {scenes}
hr_size = 64
[profiles.demo.runtime]
batch_size = {batch_size}
{extra}
"""
    return parse_config(tomllib.loads(text), source="test.toml", base_dir=root)


def _runner(root: Path, executor: str = "local", **config) -> Runner:
    runner = Runner(_config(root, **config), weights_trainer=seeded_weights, show_progress=False,
                    log=lambda *_: None, executor=executor)
    runner.ray_options = {"num_cpus": max(torch.get_num_threads(), 1)}
    return runner


def _table(rows) -> dict:
    """Result rows by (scene, method, metric, convention), values as their exact text (MEF-SSIM of
    the seeded models' outputs can be NaN: a negative per-scale score to a fractional power, as in
    the official code, and NaN != NaN)."""
    return {tuple(row[:4]): repr(row[4]) for row in rows}


def _stage_files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "cache" / "stages").glob("??/*.png"))}


def _metric_files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "cache" / "metrics").glob("??/*.json"))}


def _published(root: Path) -> dict[str, bytes]:
    images = root / "out" / "images"
    return {str(p.relative_to(images)): p.read_bytes() for p in sorted(images.rglob("*.png"))}


def _finished_runs(root: Path) -> list[tuple[str, dict]]:
    rows = sqlite3.connect(root / "out" / "results.sqlite").execute(
        "SELECT status, manifest FROM runs ORDER BY started").fetchall()
    return [(status, json.loads(manifest)) for status, manifest in rows]


def test_batches_group_equal_size_scenes_per_method_and_level(tmp_path):
    runner = _runner(tmp_path, batch_size=2, scenes=3)
    summary = runner.run(["SRFBN+MGFF", "MGFF+SRFBN"])
    assert summary.stages_total == 3 * 5 and summary.stages_computed == 15
    # equal to a run that computes one scene at a time, up to float summation order (8-bit values
    # may differ by one level where a value sits on a rounding boundary)
    single = _runner(tmp_path / "single", batch_size=1, scenes=3).run(["SRFBN+MGFF", "MGFF+SRFBN"])
    batched = {row[:4]: row[4] for row in summary.results}
    assert len(batched) == len(single.results)
    for *key, value in single.results:
        assert batched[tuple(key)] == pytest.approx(value, abs=0.05), key


def test_batch_plan_respects_size_levels_and_batch_size(tmp_path):
    runner = _runner(tmp_path, batch_size=2, scenes=3)
    runner.prepare_weights(["SRFBN", "MGFF"])
    scanned = scan_scenes({2: open_profile_dataset(runner.profile, 2)}, {}, show_progress=False)
    plan = runner.plan(runner.pipelines_for(["SRFBN+MGFF", "MGFF+SRFBN"]), scanned)
    todo = {stage.key for p in plan for stage in p.stages}
    level0, level1 = stage_batches(plan, todo, runner.profile.runtime.batch_size)
    # level 0: SRFBN on both exposures of the three scenes (all the same size: one group of six),
    # MGFF on the LR pairs; batches of at most two
    assert [(b.method, len(b.stages)) for b in level0] == [("SRFBN", 2)] * 3 + [("MGFF", 2), ("MGFF", 1)]
    assert [(b.method, len(b.stages)) for b in level1] == [("MGFF", 2), ("MGFF", 1), ("SRFBN", 2), ("SRFBN", 1)]
    assert sorted(s.key for b in level0 + level1 for s in b.stages) == sorted(todo)


def test_ray_executor_lands_exactly_what_the_local_executor_lands(tmp_path):
    needs_ray()
    local_root, ray_root = tmp_path / "local", tmp_path / "ray"
    local = _runner(local_root, "local").run()
    remote = _runner(ray_root, "ray").run()
    counts = paper_counts()
    stages = 3 * counts.stages_per_scene
    assert local.stages_total == remote.stages_total == stages
    assert local.stages_computed == remote.stages_computed == stages
    # identical results tables: every (scene, method, metric, convention, value), values bit for bit
    scored = len({(metric, convention) for _, _, metric, convention, _ in local.results})
    assert _table(local.results) == _table(remote.results) and len(local.results) == 3 * counts.pipelines * scored
    # identical stage cache entries (keys and 8-bit PNG bytes) and published images
    local_files, ray_files = _stage_files(local_root), _stage_files(ray_root)
    assert len(local_files) == stages and local_files == ray_files
    assert _published(local_root) == _published(ray_root)
    # every metric value was computed by the executor (Ray: in remote tasks): identical records
    images = 3 * counts.pipelines
    assert local.scores_computed == remote.scores_computed == local.scores_total == images
    local_metrics = _metric_files(local_root)
    assert len(local_metrics) == images and local_metrics == _metric_files(ray_root)
    (status, manifest), = _finished_runs(ray_root)
    assert status == "finished" and manifest["executor"] == "ray" and manifest["stages_computed"] == stages
    assert manifest["scoring"]["computed"] == images and manifest["scoring"]["compute_seconds"] > 0
    # the cache is the same whichever executor wrote it: a local run resumes from the Ray run's cache
    resumed = _runner(ray_root, "local").run()
    assert resumed.stages_computed == 0 and _table(resumed.results) == _table(local.results)
    assert resumed.scores_computed == 0


def _score_batches(runner: Runner):
    """Two score batches of demo scenes (final images: the mean of each scene's HR exposures and a
    noisy ground truth), their inputs, and the driver-side values of each image."""
    from pipelines.score_tasks import ScoreBatch, ScoreInputs, ScoreItem, References, to_uint8
    from pipelines.scoring import compute_scores

    dataset = open_profile_dataset(runner.profile, 2)
    scenes = [dataset.load(name) for name in dataset.names()]
    g = torch.Generator().manual_seed(0)
    outputs = [[0.5 * (s.gt_over + s.gt_under), (s.gt + 0.03 * torch.randn(s.gt.shape, generator=g)).clamp(0, 1)]
               for s in scenes]
    outputs = [[torch.from_numpy(to_uint8(x).numpy()).float() / 255 for x in pair] for pair in outputs]
    size = tuple(scenes[0].gt.shape[-2:])
    refs = [References(to_uint8(s.gt), to_uint8(s.gt_over), to_uint8(s.gt_under)) for s in scenes]
    batches, inputs, expected = [], {}, []
    for first, last in ((0, 2), (2, len(scenes))):
        items = tuple(ScoreItem(f"{s.name}-{p}", "x" * 64, 2, s.name, size, p) for s in scenes[first:last]
                      for p in ("mean", "noisy"))
        batch = ScoreBatch(2, size, items)
        batches.append(batch)
        inputs[batch] = ScoreInputs(torch.cat([to_uint8(x) for pair in outputs[first:last] for x in pair]),
                                    refs[first:last], tuple(j for j in range(last - first) for _ in range(2)))
        expected += [compute_scores(s, x, runner.profile.metrics) for s, pair in zip(scenes[first:last],
                                                                                     outputs[first:last]) for x in pair]
    return batches, inputs, expected


def test_score_batches_give_the_driver_side_values_on_either_executor(tmp_path):
    from pipelines.scoring import score_spec

    runner = _runner(tmp_path)
    batches, inputs, expected = _score_batches(runner)
    spec = score_spec(runner.profile.metrics)

    def values(executor):
        results = {r.batch: r.values for r in executor.score(spec, batches, inputs.__getitem__)}
        return [repr(list(v.items())) for batch in batches for v in results[batch]]

    exact = [repr(list(v.items())) for v in expected]
    assert values(LocalExecutor(runner.worker(), runner.cache)) == exact
    needs_ray()
    executor = RayExecutor(runner.worker(), runner.cache, lambda *_: None, num_cpus=max(torch.get_num_threads(), 1))
    try:
        assert values(executor) == exact
        # a remote failure (images of another size than their references) names the batch
        from pipelines.score_tasks import ScoreBatchError, ScoreInputs

        bad = inputs[batches[0]]
        bad = ScoreInputs(bad.images[..., :-2], bad.references, bad.scene_of)
        with pytest.raises(ScoreBatchError) as info:
            list(executor.score(spec, batches[:1], lambda batch: bad))
        assert info.value.batch == batches[0] and isinstance(info.value.cause, ValueError)
    finally:
        executor.close()


def test_ray_executor_reports_a_failing_batch_with_its_scenes(tmp_path):
    needs_ray()
    runner = _runner(tmp_path, "ray")
    runner.prepare_weights(["SRFBN"])
    worker = runner.worker()
    executor = RayExecutor(worker, runner.cache, lambda *_: None, num_cpus=1)
    try:
        stages = (Stage("a" * 64, "SRFBN", "sr", ("x",), "scene-a"), Stage("b" * 64, "SRFBN", "sr", ("y",), "scene-b"))
        batch = StageBatch("SRFBN", "sr", 2, stages)
        # a 4-channel input is refused by the model: the remote error comes back as a BatchError
        with pytest.raises(BatchError) as info:
            list(executor.run([batch], lambda stage: [torch.rand(1, 4, 8, 8)], set()))
        assert [s.scene for s in info.value.batch.stages] == ["scene-a", "scene-b"]
        error = batch_failure(info.value, {}, 0)
        assert isinstance(error, StageError) and "scene 'scene-a'; scene 'scene-b': SRFBN failed" in str(error)
        assert "expected a float RGB tensor" in str(error)
        assert "\n" not in str(error)
    finally:
        executor.close()


def test_local_executor_skips_stages_another_process_cached(tmp_path):
    runner = _runner(tmp_path)
    runner.run(["SRFBN+MGFF"])
    key = next(iter(_stage_files(tmp_path))).removesuffix(".png")
    stage = Stage(key, "SRFBN", "sr", ("x",), "scene-a")
    results = list(LocalExecutor(runner.worker(), runner.cache).run(
        [StageBatch("SRFBN", "sr", 2, (stage,))], lambda s: pytest.fail("must not load inputs"), set()))
    assert [r.found_cached for r in results] == [[stage]] and results[0].computed == []


def test_ray_missing_says_how_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    runner = _runner(tmp_path, "ray")
    with pytest.raises(RuntimeError, match=r"cfanet-bench\[distributed\]"):
        runner.run(["SRFBN+MGFF"])
    # nothing was lost: the run is recorded as failed, and a local run then computes everything
    assert [status for status, _ in _finished_runs(tmp_path)] == ["failed"]


@pytest.mark.parametrize("line, key", [
    ('executor = "spark"', "runtime.executor"),
    ("gpus_per_task = -1", "runtime.gpus_per_task"),
    ("cpus_per_task = -2", "runtime.cpus_per_task"),
    ('amp_dtype = "fp8"', "runtime.amp_dtype"),
])
def test_runtime_keys_are_checked(tmp_path, line, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _config(tmp_path, extra=line)


def test_cli_executor_option_reaches_the_runner(tmp_path, monkeypatch, capsys):
    from pipelines import cli

    seen = {}

    class Recording(Runner):
        def run(self, pipelines=None, force=False):
            seen["executor"] = self.executor_name
            raise KeyboardInterrupt  # stop before any work; the option is what is under test

    monkeypatch.setattr("pipelines.runner.Runner", Recording)
    config = tmp_path / "benchmark.toml"
    config.write_text('[profiles.demo]\n[profiles.demo.runtime]\nexecutor = "local"\n')
    for argv, expected in ((["run-all"], "local"), (["run-all", "--executor", "ray"], "ray"),
                           (["run", "CF-Net", "--executor", "ray"], "ray")):
        assert cli.main(["--config", str(config), *argv]) == cli.EXIT_INTERRUPTED
        assert seen.pop("executor") == expected
    with pytest.raises(SystemExit):
        cli.main(["--config", str(config), "run-all", "--executor", "spark"])
    assert "invalid choice: 'spark'" in capsys.readouterr().err
