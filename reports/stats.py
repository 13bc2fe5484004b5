"""Paired comparisons of every method with the reference (proposed) method over the same scenes.

The reference is the grid's (`manifest["grid"]["reference"]`, CFANet in the paper's comparison).
For each method M and each Table 1 metric, the per-scene differences are d_k = R_k - M_k (positive:
the reference R scores higher, which is better where higher is better, the case of every metric
the paper uses; the metric's `higher_is_better` says). Reported: the mean of d, a 95% paired
bootstrap confidence interval of that mean (scenes resampled with replacement, percentile interval,
10,000 resamples, fixed seed), and the two-sided Wilcoxon signed-rank p-value (zero differences
dropped, `zero_method="wilcox"`), plus Holm-adjusted p-values over the methods compared on that
metric. Only scenes where both have a score are paired.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.data import ReportData
from reports.metrics import MetricInfo

N_RESAMPLES = 10_000
SEED = 0
ZERO_TOLERANCE = 1e-12
_CHUNK_ELEMENTS = 4_000_000  # bound the (resamples x scenes) index array to ~32 MB


def paired_bootstrap_ci(differences, *, n_resamples: int = N_RESAMPLES, confidence: float = 0.95,
                        seed: int = SEED) -> tuple[float, float, float]:
    """(mean, low, high): the mean of `differences` and its percentile bootstrap interval.

    Resamples whole pairs (the differences) with replacement, vectorised in chunks; deterministic for
    a given seed. With one difference the interval is that value; with none, all three are NaN.
    """
    d = np.asarray(differences, dtype=np.float64)
    d = d[np.isfinite(d)]
    n = d.size
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        index = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = d[index].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(d.mean()), float(low), float(high)


@dataclass(frozen=True)
class WilcoxonResult:
    p_value: float
    n_nonzero: int
    note: str


def wilcoxon_signed_rank(differences) -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank test of `differences` against 0.

    Differences within 1e-12 of zero are dropped first (the `wilcox` zero method). No non-zero
    difference gives p = 1 ("no difference"); fewer than 6 give scipy's exact p-value with a note that
    it cannot fall below 0.05 (the smallest two-sided exact p-value with n pairs is 2 / 2^n).
    """
    from scipy.stats import wilcoxon

    d = np.asarray(differences, dtype=np.float64)
    d = d[np.isfinite(d)]
    nonzero = d[np.abs(d) > ZERO_TOLERANCE]
    n = int(nonzero.size)
    if d.size == 0:
        return WilcoxonResult(float("nan"), 0, "no paired scenes")
    if n == 0:
        return WilcoxonResult(1.0, 0, "all differences are zero")
    p = float(wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided").pvalue)
    note = ""
    if n < 6:
        note = f"only {n} non-zero difference(s): p cannot fall below {min(1.0, 2.0 / 2 ** n):.3g}"
    if n < d.size:
        note = "; ".join(filter(None, [note, f"{d.size - n} zero difference(s) dropped"]))
    return WilcoxonResult(p, n, note)


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and does not count as a test)."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    m = valid.size
    if m == 0:
        return adjusted
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


COLUMNS = ["metric", "method", "n", "mean_method", "mean_reference", "mean_diff", "ci_low", "ci_high", "p_value",
           "p_holm", "note", "higher_is_better"]


def compare_with_reference(data: ReportData, scale: int, convention: str, *, reference: str | None = None,
                           metrics: list[MetricInfo] | None = None, n_resamples: int = N_RESAMPLES,
                           seed: int = SEED) -> pd.DataFrame:
    """One row per (metric, method != reference) with columns metric, method, n, mean_method,
    mean_reference, mean_diff (reference - method), ci_low, ci_high, p_value, p_holm, note,
    higher_is_better. `reference` defaults to the grid's, `metrics` to Table 1's. Empty when the
    reference has no results (or there is no other method)."""
    reference = data.reference if reference is None else reference
    metrics = data.table1_metrics if metrics is None else metrics
    methods = [name for name in data.methods if name != reference]
    if reference is None or reference not in data.methods or not methods:
        return pd.DataFrame(columns=COLUMNS)
    table = data.main_scores(scale, convention, metrics)
    rows = []
    for metric in metrics:
        wide = table[metric.name].unstack("method")
        block = []
        for name in methods:
            if name in wide and reference in wide:
                pair = wide[[reference, name]].dropna()
            else:
                pair = pd.DataFrame(columns=[reference, name], dtype=float)
            d = (pair[reference] - pair[name]).to_numpy(dtype=np.float64)
            mean, low, high = paired_bootstrap_ci(d, n_resamples=n_resamples, seed=seed)
            test = wilcoxon_signed_rank(d)
            block.append({"metric": metric.name, "method": name, "n": int(d.size),
                          "mean_method": float(pair[name].mean()) if d.size else float("nan"),
                          "mean_reference": float(pair[reference].mean()) if d.size else float("nan"),
                          "mean_diff": mean, "ci_low": low, "ci_high": high, "p_value": test.p_value,
                          "note": test.note, "higher_is_better": metric.higher_is_better})
        adjusted = holm([row["p_value"] for row in block])
        for row, p in zip(block, adjusted):
            row["p_holm"] = float(p)
        rows += block
    return pd.DataFrame(rows, columns=COLUMNS)
