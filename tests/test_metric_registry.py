"""The metric registry (`cfanet.metrics.registry`) and the scoring built on it (`pipelines.scoring`):
complete descriptors, every function runs, the runner's keys and cache follow the registry, and the
metric cache key follows the metric code. Counts are always the registry's."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import fields
from types import SimpleNamespace

import pytest
import torch

from cfanet.data.scene import Scene
from cfanet.metrics.registry import (DESCRIPTOR_FIELDS, METRICS, METRICS_BY_NAME, OFFICIAL, Metric, References,
                                     get_metric, metric_key, metric_names, select)
from pipelines.config import MetricsConfig

SIZE = 48  # MEF-SSIM needs min(H, W) >= 44


def images(seed: int, n: int = 4) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 3, SIZE, SIZE, generator=g) for _ in range(n)]


def scene(gt=True, sources=True, scale: int = 2, seed: int = 0) -> Scene:
    gt_image, over, under, _ = images(seed)
    return Scene("s", over[..., ::scale, ::scale], under[..., ::scale, ::scale], gt_image if gt else None,
                 over if sources else None, under if sources else None, scale)


# -- descriptors ----------------------------------------------------------------------------------

def test_descriptors_are_complete_and_names_unique():
    assert len(METRICS) == len(set(metric_names())) == len(METRICS_BY_NAME)
    for metric in METRICS:
        assert isinstance(metric, Metric)
        assert metric.name.isidentifier() and "|" not in metric.name
        assert metric.label and metric.label_html and metric.label_tex and metric.description
        assert isinstance(metric.decimals, int) and 0 <= metric.decimals <= 8
        assert metric.needs in ("gt", "sources") and callable(metric.function)
        described = metric.describe()
        assert tuple(described) == DESCRIPTOR_FIELDS and json.loads(json.dumps(described)) == described
    with pytest.raises(Exception):
        METRICS[0].name = "other"  # frozen
    assert {f.name for f in fields(Metric)} >= set(DESCRIPTOR_FIELDS)


def test_the_papers_metrics_come_first_then_qabf():
    """Table 1's metrics and their printing are the paper's: PSNR (2 decimals, dB), SSIM and MEF-SSIM
    (4); Q^AB/F is scored (4 decimals) but off in Table 1 by default."""
    table1 = [m.name for m in METRICS if m.in_table1]
    assert table1 == ["psnr", "ssim", "mef_ssim"] and metric_names()[:len(table1)] == tuple(table1)
    assert "qabf" in metric_names() and not get_metric("qabf").in_table1
    assert {m.name: m.decimals for m in METRICS if m.name in ("psnr", "ssim", "mef_ssim", "qabf")} == \
        {"psnr": 2, "ssim": 4, "mef_ssim": 4, "qabf": 4}
    assert get_metric("psnr").unit == " dB" and all(m.unit == "" for m in METRICS if m.name != "psnr")
    assert all(m.higher_is_better for m in METRICS)
    assert get_metric("qabf").label == "Q^AB/F" and get_metric("qabf").label_html == "Q<sup>AB/F</sup>"
    assert get_metric("qabf").label_tex == "$Q^{AB/F}$"
    for name, needs, dependent in (("psnr", "gt", True), ("ssim", "gt", True), ("mef_ssim", "sources", False),
                                   ("qabf", "sources", False)):
        metric = get_metric(name)
        assert (metric.needs, metric.convention_dependent) == (needs, dependent)
        assert metric.conventions(["paper", "sr"]) == (["paper", "sr"] if dependent else [OFFICIAL])


def test_lookups():
    with pytest.raises(KeyError, match="registered: psnr, ssim"):
        get_metric("lpips")
    assert select(None) == METRICS and [m.name for m in select(["qabf", "psnr"])] == ["psnr", "qabf"]
    assert metric_key("psnr", "paper") == "psnr|paper"


def test_every_function_runs_on_a_tiny_image():
    gt, over, under, other = images(1)
    refs = References(gt=gt, gt_over=over, gt_under=under)
    for metric in METRICS:
        value = metric.compute(other, refs, "paper", 2)
        assert isinstance(value, float) and math.isfinite(value), metric.name
        again, extras = metric.compute_details(other, refs, "paper", 2)
        assert again == value and json.loads(json.dumps(extras)) == extras
    assert get_metric("mef_ssim").compute_details(other, refs)[1]["per_scale"]
    # a perfect output: PSNR inf, SSIM 1, MEF-SSIM 1 when fused = every source
    same = References(gt=gt, gt_over=gt, gt_under=gt)
    assert get_metric("psnr").compute(gt, same) == math.inf and get_metric("ssim").compute(gt, same) == 1.0
    assert get_metric("mef_ssim").compute(gt, same) == pytest.approx(1.0)
    from cfanet.metrics.qabf import IDENTICAL_SCORE

    assert get_metric("qabf").compute(gt, same) == pytest.approx(IDENTICAL_SCORE)
    # conventions matter only to the convention-dependent metrics
    for metric in METRICS:
        paper, sr = metric.compute(other, refs, "paper", 2), metric.compute(other, refs, "sr", 2)
        assert (paper != sr) == metric.convention_dependent, metric.name


def test_available_follows_needs():
    for metric in METRICS:
        assert metric.available(scene())
        assert metric.available(scene(gt=False)) == (metric.needs == "sources")
        assert metric.available(scene(sources=False)) == (metric.needs == "gt")


def test_registry_and_descriptors_import_no_torch():
    """The reports (which never import torch) read the registry's descriptors."""
    script = ("import sys, json\nfrom cfanet.metrics.registry import METRICS\n"
              "json.dumps([m.describe() for m in METRICS])\n"
              "print(sorted(n for n in sys.modules if n == 'torch' or n.startswith('torch.')))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


# -- scoring: the runner's keys, the cache, the manifest's descriptors ---------------------------------

def fused(seed: int = 0) -> torch.Tensor:
    """A plausible output (the mean of the exposures): every metric finite."""
    _, over, under, _ = images(seed)
    return 0.5 * (over + under)


def test_score_output_keys_follow_the_registry(tmp_path):
    from pipelines.scoring import conventions_of, score_output

    config = MetricsConfig(convention="paper", also=("sr",))
    conventions = conventions_of(config)
    full = score_output(scene(), "k" * 64, fused(), config, tmp_path)
    assert set(full) == {metric_key(m.name, c) for m in METRICS for c in m.conventions(conventions)}
    no_gt = score_output(scene(gt=False), "k" * 64, fused(), config, tmp_path)
    assert set(no_gt) == {metric_key(m.name, OFFICIAL) for m in METRICS if m.needs == "sources"}
    no_sources = score_output(scene(sources=False), "k" * 64, fused(), config, tmp_path)
    assert set(no_sources) == {metric_key(m.name, c) for m in METRICS if m.needs == "gt" for c in conventions}
    assert all(math.isfinite(v) for v in full.values())
    assert no_gt["qabf|official"] == full["qabf|official"] and no_sources["psnr|sr"] == full["psnr|sr"]


def test_metric_values_are_cached_and_keyed_by_the_metric_code(tmp_path, monkeypatch):
    import pipelines.scoring as scoring

    config = MetricsConfig()
    first = scoring.score_output(scene(), "a" * 64, fused(), config, tmp_path)
    assert len(list((tmp_path / "metrics").rglob("*.json"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a cached metric value")

    monkeypatch.setattr(scoring, "compute_scores", fail)
    assert scoring.score_output(scene(), "a" * 64, fused(), config, tmp_path) == first
    # another final image, other references, another convention set: another key
    key = scoring.metrics_cache_key(scene(), "a" * 64, config)
    assert scoring.metrics_cache_key(scene(), "b" * 64, config) != key
    assert scoring.metrics_cache_key(scene(seed=5), "a" * 64, config) != key
    assert scoring.metrics_cache_key(scene(), "a" * 64, MetricsConfig(also=())) != key
    assert scoring.metrics_cache_key(scene(), "a" * 64, SimpleNamespace(convention="paper", also=("sr",),
                                                                        metrics=["psnr"])) != key
    # the metric code: a changed digest is a new key (no hand-bumped version)
    monkeypatch.setattr(scoring, "metric_code_digest", lambda modules=(): "edited")
    assert scoring.metrics_cache_key(scene(), "a" * 64, config) != key


def test_the_metric_code_digest_covers_every_metric_module():
    from pipelines.codehash import module_closure
    from pipelines.scoring import REGISTRY_MODULE, _metric_modules, metric_code_digest

    covered = set(module_closure(REGISTRY_MODULE))
    modules = {m.function.__module__ for m in METRICS}
    for m in METRICS:   # every metric's own module is imported (lazily) by its function
        assert m.function.__module__ in modules
    assert {"cfanet.metrics.psnr_ssim", "cfanet.metrics.mef_ssim", "cfanet.metrics.qabf", "cfanet.color",
            "cfanet.images"} <= covered
    assert not any(name.startswith(("reports", "baselines", "pipelines.runner")) for name in covered)
    assert len(metric_code_digest(_metric_modules(METRICS))) >= 16


def test_describe_metrics_for_the_manifest():
    from pipelines.scoring import describe_metrics

    described = describe_metrics(MetricsConfig(convention="sr", also=("paper",)))
    assert [d["name"] for d in described] == list(metric_names())
    assert json.loads(json.dumps(described)) == described
    for entry, metric in zip(described, METRICS):
        assert {k: entry[k] for k in DESCRIPTOR_FIELDS} == metric.describe()
        assert entry["conventions"] == (["sr", "paper"] if metric.convention_dependent else [OFFICIAL])
    # a profile that chooses its Table 1 metrics and the metrics it scores
    chosen = describe_metrics(SimpleNamespace(convention="paper", also=(), metrics=["psnr", "qabf"],
                                              table1=["qabf"]))
    assert [(d["name"], d["in_table1"]) for d in chosen] == [("psnr", False), ("qabf", True)]
