"""Scoring as tasks (`pipelines.score_tasks`): a batch of final images scored on a worker gives exactly
the values of the driver-side scoring (`pipelines.scoring.compute_scores`), metrics with a batched
function are called once per batch and convention, the others once per image; score batches are
planned by scale and size; the local executor scores them and names a failing batch."""

from __future__ import annotations

import math

import pytest
import torch

from cfanet.data.scene import Scene
from cfanet.metrics import psnr_ssim
from cfanet.metrics.registry import METRICS, metric_key
from pipelines.config import MetricsConfig
from pipelines.planning import ScoreBatcher, score_batch_size, score_batches
from pipelines.score_tasks import (DEFAULT_SCORE_BATCH, References, ScoreBatch, ScoreBatchError, ScoreInputs,
                                   ScoreItem, batched_function, score_batch, to_uint8)
from pipelines.scoring import compute_scores, score_spec

SIZE = 64  # MEF-SSIM needs min(H, W) >= 44; SSIM's window fits after the `sr` crop


def _scene(seed: int, gt: bool = True, sources: bool = True) -> Scene:
    g = torch.Generator().manual_seed(seed)
    gt_image, over, under = (torch.rand(1, 3, SIZE, SIZE, generator=g) for _ in range(3))
    over, under = 0.5 * (gt_image + over), 0.5 * gt_image * (0.5 + under)  # related to the ground truth
    return Scene(f"s{seed}", over[..., ::2, ::2], under[..., ::2, ::2], gt_image if gt else None,
                 over if sources else None, under if sources else None, 2)


def _output(scene: Scene, seed: int) -> torch.Tensor:
    """A plausible 8-bit final image (what the stage cache gives back): every metric finite."""
    g = torch.Generator().manual_seed(100 + seed)
    base = scene.gt if scene.gt is not None else 0.5 * (scene.gt_over + scene.gt_under)
    noisy = (base + 0.05 * torch.randn(base.shape, generator=g)).clamp(0, 1)
    return torch.from_numpy(to_uint8(noisy).numpy()).float() / 255.0


def _inputs(scenes: list[Scene], outputs: list[torch.Tensor], scene_of: tuple[int, ...]) -> ScoreInputs:
    refs = [References(*(None if x is None else to_uint8(x) for x in (s.gt, s.gt_over, s.gt_under))) for s in scenes]
    return ScoreInputs(torch.cat([to_uint8(o) for o in outputs]), refs, scene_of)


CONFIG = MetricsConfig(convention="paper", also=("sr",))


@pytest.fixture(scope="module")
def batch():
    """Five images over three scenes, one without a ground truth and one without source exposures."""
    scenes = [_scene(0), _scene(1, gt=False), _scene(2, sources=False)]
    scene_of = (0, 0, 1, 2, 2)
    outputs = [_output(scenes[j], i) for i, j in enumerate(scene_of)]
    return scenes, outputs, scene_of


def test_a_batch_gives_exactly_the_driver_side_values(batch):
    scenes, outputs, scene_of = batch
    values, seconds = score_batch(score_spec(CONFIG), 2, _inputs(scenes, outputs, scene_of), "cpu")
    expected = [compute_scores(scenes[j], outputs[i], CONFIG) for i, j in enumerate(scene_of)]
    # the same keys in the same order (the record written is the same JSON), the same floats bit for bit
    assert [list(v.items()) for v in values] == [list(e.items()) for e in expected]
    assert [repr(x) for v in values for x in v.values()] == [repr(x) for e in expected for x in e.values()]
    assert set(values[2]) == {metric_key(m.name, "official") for m in METRICS if m.needs == "sources"}
    assert set(seconds) == {m.name for m in METRICS} and all(s >= 0 for s in seconds.values())


def test_batched_functions_are_called_once_per_batch_and_agree(batch, monkeypatch):
    scenes, outputs, scene_of = batch
    calls = []
    for name in ("psnr_batch", "ssim_batch"):
        real = getattr(psnr_ssim, name)

        def counting(*args, _real=real, _name=name, **kwargs):
            calls.append((_name, args[0].shape[0], args[2]))
            return _real(*args, **kwargs)

        monkeypatch.setattr(psnr_ssim, name, counting)
    per_image, _ = score_batch(score_spec(CONFIG), 2, _inputs(scenes, outputs, scene_of), "cpu")
    assert calls == []  # the CPU default is per image: bit for bit the driver-side values
    batched, _ = score_batch(score_spec(CONFIG), 2, _inputs(scenes, outputs, scene_of), "cpu", batched=True)
    # once per metric and convention, on the images whose scene has a ground truth (4 of 5)
    assert calls == [("psnr_batch", 4, "paper"), ("psnr_batch", 4, "sr"), ("ssim_batch", 4, "paper"),
                     ("ssim_batch", 4, "sr")]
    for got, expected in zip(batched, per_image):
        assert list(got) == list(expected)
        for key in expected:  # the batched functions sum in strips that depend on the batch: ~1e-15
            assert got[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-12) or \
                (math.isnan(got[key]) and math.isnan(expected[key])), key


def test_a_metric_without_a_batched_function_is_called_per_image(batch, monkeypatch):
    scenes, outputs, scene_of = batch
    monkeypatch.delattr(psnr_ssim, "psnr_batch")
    calls = []
    real = psnr_ssim.psnr
    monkeypatch.setattr(psnr_ssim, "psnr", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    assert batched_function(METRICS[0]) is None and batched_function(METRICS[1]) is not None
    values, _ = score_batch(score_spec(CONFIG), 2, _inputs(scenes, outputs, scene_of), "cpu", batched=True)
    assert calls == [(1, 3, SIZE, SIZE)] * 8  # 4 images with a ground truth x 2 conventions, one at a time
    expected = [compute_scores(scenes[j], outputs[i], CONFIG) for i, j in enumerate(scene_of)]
    assert [v["psnr|sr"] for v in values if "psnr|sr" in v] == [e["psnr|sr"] for e in expected if "psnr|sr" in e]


def test_batched_function_lookup():
    from dataclasses import replace

    assert batched_function(replace(METRICS[0], name="unregistered")) is None
    for metric in METRICS:  # whatever the metric modules offer today, the lookup never fails
        function = batched_function(metric)
        assert function is None or callable(function)


def _item(scene: str, pipeline: str, size=(64, 64), scale: int = 2) -> ScoreItem:
    return ScoreItem(f"{scene}-{pipeline}-{size}", f"final-{scene}-{pipeline}", scale, scene, size, pipeline)


def test_score_batches_group_by_scale_and_size_in_order():
    items = [_item("a", p) for p in "PQR"] + [_item("b", "P", (32, 48))] + [_item("c", p) for p in "PQ"] + \
        [_item("a", "P", scale=4)]
    batches = score_batches(items, 2)
    # full batches as they fill up (scene by scene), then the partial ones
    assert [(b.scale, b.size, [(i.scene, i.pipeline) for i in b.items]) for b in batches] == [
        (2, (64, 64), [("a", "P"), ("a", "Q")]), (2, (64, 64), [("a", "R"), ("c", "P")]),
        (2, (32, 48), [("b", "P")]), (2, (64, 64), [("c", "Q")]), (4, (64, 64), [("a", "P")])]
    assert sorted(i.key for b in batches for i in b.items) == sorted(i.key for i in items)
    batcher = ScoreBatcher(3)
    assert [batcher.add(item) for item in items[:2]] == [None, None]
    assert batcher.add(items[2]) == ScoreBatch(2, (64, 64), tuple(items[:3]))
    assert batcher.add(items[4]) is None and batcher.flush() == [ScoreBatch(2, (64, 64), (items[4],))]
    assert batcher.flush() == []
    assert batches[1].scenes() == ["a", "c"] and batches[1].describe() == "x2 scenes 'a', 'c' (R, P)"


def test_score_batch_size_follows_the_runtime_batch_size():
    from pipelines.config import RuntimeConfig

    assert score_batch_size(RuntimeConfig()) == DEFAULT_SCORE_BATCH
    assert score_batch_size(RuntimeConfig(batch_size=32)) == 32


def test_local_executor_scores_batches_and_names_a_failing_one(batch):
    from pipelines.compute import StageWorker
    from pipelines.config import RuntimeConfig
    from pipelines.executors import LocalExecutor
    from pipelines.runner import ScoringError, score_failure

    scenes, outputs, scene_of = batch
    executor = LocalExecutor(StageWorker(RuntimeConfig(), "cpu", {}, {}), cache=None)
    items = tuple(_item(scenes[j].name, f"M{i}") for i, j in enumerate(scene_of))
    good = ScoreBatch(2, (SIZE, SIZE), items)
    [result] = executor.score(score_spec(CONFIG), [good], lambda b: _inputs(scenes, outputs, scene_of))
    assert result.batch == good and result.seconds > 0
    assert result.values == [compute_scores(scenes[j], outputs[i], CONFIG) for i, j in enumerate(scene_of)]
    # images of another size than their references: the error names the batch, and the runner's
    # message names its scenes and pipelines on one line
    bad = ScoreBatch(2, (SIZE, SIZE), items[:2])
    refs = _inputs(scenes, outputs, scene_of).references
    wrong = ScoreInputs(to_uint8(torch.rand(2, 3, SIZE, SIZE - 2)), refs, (0, 0))
    with pytest.raises(ScoreBatchError) as info:
        list(executor.score(score_spec(CONFIG), [bad], lambda b: wrong))
    assert info.value.batch == bad and isinstance(info.value.cause, ValueError)
    error = score_failure(info.value, {}, 5)
    assert isinstance(error, ScoringError) and "\n" not in str(error)
    assert str(error).startswith("scene 's0': scoring M0, M1 failed: ") and "5 image(s)" in str(error)
