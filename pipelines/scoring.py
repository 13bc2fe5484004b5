"""Scoring a run's final images: every metric of the profile on one output, cached by content.

The metrics are those of `cfanet.metrics.registry` (in its order): a metric that needs the ground
truth (PSNR, SSIM) is scored against `scene.gt` once per PSNR/SSIM convention of the profile; one
that needs the source exposures (MEF-SSIM, Q^AB/F) against the HR over/under exposures
(`scene.gt_over`, `scene.gt_under`) once, under the convention "official". A metric whose
references the scene lacks is skipped.

A metric value depends only on the output's cache key, the references' pixels, the conventions,
the scale, the metrics scored and the metric code, so the values of one output are stored under the
hash of those and never computed twice (a rerun, a second report, another run sharing the cache).
The metric code enters the key as the digest of the import closure of the metric registry and the
metric modules (`metric_code_digest`, by `pipelines.codehash`): editing a metric, the colour code or
the 8-bit quantisation recomputes the values; editing a method, the runner or the reports does not.

Each metric cache file holds its key, the values and the SHA-256 of both (`{"key", "values",
"sha256"}`), checked when it is read: a file that was rewritten, copied from another key, damaged
or unreadable gives a `MetricCacheWarning` naming it and the values are computed again (and the
file rewritten). Files from before the checksum (a bare `{"metric|convention": value}` object)
are recomputed and rewritten in the new form without a warning.

`score_output` scores one image in the calling process. The runner scores through its executor
instead: it reads the records (`cached_scores`), has the images whose records are missing scored as
batches where it computes stages (`pipelines.score_tasks`, the profile's `score_spec`) and writes
what comes back (`store_scores`): the same keys, records and values.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from functools import lru_cache
from pathlib import Path

from cfanet.atomic import write_text_atomic
from cfanet.metrics.registry import METRICS, Metric, metric_key, select
from pipelines.cache import canonical_json, image_key

REGISTRY_MODULE = "cfanet.metrics.registry"


def conventions_of(metrics_config) -> list[str]:
    """The profile's PSNR/SSIM conventions: the main one first, then `also`, without repeats."""
    return [metrics_config.convention] + [c for c in metrics_config.also if c != metrics_config.convention]


def metrics_of(metrics_config) -> tuple[Metric, ...]:
    """The metrics a profile scores, in registry order: the profile's `metrics` names when its
    configuration has that key, else every registered metric."""
    return select(getattr(metrics_config, "metrics", None))


def _table1_names(metrics_config) -> set[str] | None:
    names = getattr(metrics_config, "table1", None)
    return set(names) if names is not None else None


def describe_metrics(metrics_config) -> list[dict]:
    """JSON-able descriptors of the metrics the profile scores (registry order), for the run manifest
    (`manifest["metrics"]`), which is where the torch-free reports read them: name, label,
    label_html, label_tex, decimals, higher_is_better, needs, convention_dependent, in_table1 (the
    descriptor's default, or the profile's `table1` names when its configuration has that key),
    unit, description, and the conventions each is stored under."""
    table1 = _table1_names(metrics_config)
    conventions = conventions_of(metrics_config)
    described = []
    for metric in metrics_of(metrics_config):
        entry = metric.describe()
        if table1 is not None:
            entry["in_table1"] = metric.name in table1
        entry["conventions"] = metric.conventions(conventions)
        described.append(entry)
    return described


@lru_cache(maxsize=None)
def metric_code_digest(modules: tuple[str, ...] = (REGISTRY_MODULE,)) -> str:
    """The code identity of the metric values: the digest (`pipelines.codehash.closure_digest`) of
    the in-project import closure of the metric registry and of the modules defining the metrics'
    functions: every metric module (the registry imports them inside its functions), the colour
    conversions, the 8-bit quantisation (`cfanet.images`) and what they import. Cached per process."""
    from pipelines.codehash import closure_digest

    return closure_digest(modules)


def _metric_modules(metrics) -> tuple[str, ...]:
    return tuple(sorted({REGISTRY_MODULE, *(metric.function.__module__ for metric in metrics)}))


def metrics_cache_key(scene, final_key: str, metrics_config) -> str:
    """The cache key of the metric values of one final image (see the module docstring)."""
    refs = [image_key(x) if x is not None else None for x in (scene.gt, scene.gt_over, scene.gt_under)]
    metrics = metrics_of(metrics_config)
    names = [metric.name for metric in metrics]
    return hashlib.sha256(canonical_json([final_key, refs, conventions_of(metrics_config), scene.scale, names,
                                          metric_code_digest(_metric_modules(metrics))]).encode()).hexdigest()


def compute_scores(scene, output, metrics_config) -> dict[str, float]:
    """Every available metric of the profile on `output`, as {"metric|convention": value} (no cache)."""
    values: dict[str, float] = {}
    conventions = conventions_of(metrics_config)
    for metric in metrics_of(metrics_config):
        if not metric.available(scene):
            continue
        for convention in metric.conventions(conventions):
            values[metric_key(metric.name, convention)] = metric.compute(output, scene, convention, scene.scale)
    return values


class MetricCacheWarning(UserWarning):
    """A metric cache file failed its integrity check; its values are computed again."""


def _values_checksum(key: str, values: dict) -> str:
    return hashlib.sha256(canonical_json([key, values]).encode()).hexdigest()


def _cached_values(path: Path, key: str) -> dict[str, float] | None:
    """The values stored in `path` for `key` when the file is intact; None when it is missing or
    from before checksums; a damaged file warns (naming it) and gives None."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        reason = f"unreadable ({exc})"
    else:
        if isinstance(record, dict) and "sha256" not in record and "values" not in record:
            return None  # written before checksums: computed again, silently
        values = record.get("values") if isinstance(record, dict) else None
        if not isinstance(values, dict) or not all(
                isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
                for k, v in values.items()):
            reason = "not a metric cache record"
        elif record.get("key") != key:
            reason = "stored under another key"
        elif record.get("sha256") != _values_checksum(key, values):
            reason = "values do not match their checksum (changed after they were stored)"
        else:
            return dict(values)
    warnings.warn(f"metric cache file {path} (key {key}) is damaged: {reason}; the values are computed again",
                  MetricCacheWarning, stacklevel=4)
    return None


def metrics_cache_path(cache_dir: str | Path, key: str) -> Path:
    """Where the metric values under `key` are stored: `cache_dir/metrics/<key[:2]>/<key>.json`."""
    return Path(cache_dir) / "metrics" / key[:2] / f"{key}.json"


def cached_scores(cache_dir: str | Path, key: str) -> dict[str, float] | None:
    """The values stored under `key` when their record is intact; None when it is missing or from
    before checksums; a damaged record warns (`MetricCacheWarning`, naming the file) and gives None."""
    return _cached_values(metrics_cache_path(cache_dir, key), key)


def store_scores(cache_dir: str | Path, key: str, values: dict[str, float]) -> None:
    """Write the values of `key` as a checksummed record, atomically (unique temporary file + rename)."""
    record = {"key": key, "values": values, "sha256": _values_checksum(key, values)}
    write_text_atomic(metrics_cache_path(cache_dir, key), json.dumps(record))


def score_spec(metrics_config):
    """The `pipelines.score_tasks.ScoreSpec` of the profile: its metrics (registry order) and its
    PSNR/SSIM conventions, what a worker needs to score an image as `compute_scores` does."""
    from pipelines.score_tasks import ScoreSpec

    return ScoreSpec(tuple(metric.name for metric in metrics_of(metrics_config)),
                     tuple(conventions_of(metrics_config)))


def score_output(scene, final_key: str, output, metrics_config, cache_dir: Path) -> dict[str, float]:
    """Every metric of the profile on `output` (the final image stored under `final_key`), as
    {"metric|convention": value}; cached under `cache_dir/metrics` (checksummed, verified on read).
    The runner scores through its executor instead (`pipelines.score_tasks`), with the same keys and
    records."""
    key = metrics_cache_key(scene, final_key, metrics_config)
    cached = cached_scores(cache_dir, key)
    if cached is not None:
        return cached
    values = compute_scores(scene, output, metrics_config)
    store_scores(cache_dir, key, values)
    return values


__all__ = ["METRICS", "MetricCacheWarning", "cached_scores", "compute_scores", "conventions_of", "describe_metrics",
           "metric_code_digest", "metrics_cache_key", "metrics_cache_path", "metrics_of", "score_output", "score_spec",
           "store_scores"]
