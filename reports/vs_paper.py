"""A run's Table 1 beside the paper's own numbers (`reports.paper_reference`).

At the paper's scale (x2), for every method of the run and every metric the paper reports: our mean
over scenes, the paper's value and the difference ours - paper (paper-only methods are listed too,
with no value of ours; methods the paper does not have show none of its values). The two rankings
are compared per metric with Kendall's tau-b (`scipy.stats.kendalltau`) over the methods with a
value in both, with its two-sided p-value. At any other scale there is nothing to compare: the
paper publishes no numbers there.

Whether the comparison can mean anything is said on every page that shows it: with another data
set than the paper's, or with demo weights for any method, it compares form only (different data
and weights), never a reproduction; with the paper's data set and no demo weights it says that the
paper states no metric convention and which convention our numbers are in. Either way it says that the
paper states no inference protocol (whole image, or each method's release script with its tiling and
rounding) and which one ours ran under (`reports.protocols`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from reports.data import CONVENTIONS, ReportData
from reports.metrics import MetricInfo
from reports.paper_reference import PaperReference
from reports.protocols import protocol_clause
from reports.table1 import table1_means

MISSING = "\u2014"                       # an em dash: no value (not in the paper, or not in this run)
ORDER_COLOURS = {"SR+MEF": "#4878a8", "MEF+SR": "#6aa84f", "joint": "#e69138", "other": "#888888"}
PROPOSED_COLOUR = "#cc0000"


@dataclass(frozen=True)
class RankAgreement:
    """Kendall's tau-b between our values and the paper's of one metric, over `n` methods."""

    metric: str
    n: int
    tau: float          # NaN with fewer than two methods or a constant ranking
    p_value: float


@dataclass(frozen=True)
class Comparability:
    """Whether a run can be set against the paper's numbers, and the sentence that says so."""

    comparable: bool
    reasons: tuple[str, ...]      # why not (empty when comparable)
    text: str


@dataclass
class PaperComparison:
    """One scale's comparison. `frame`: index = method (ours in Table 1 order, then the paper's
    methods absent from the run, in the paper's order); columns order, in_run, in_paper and, per
    metric m, `m_ours`, `m_paper`, `m_diff` (NaN where a side has no value)."""

    scale: int
    reference: PaperReference
    metrics: list[MetricInfo]
    frame: pd.DataFrame
    agreement: list[RankAgreement]
    comparability: Comparability

    @property
    def methods(self) -> list[str]:
        return list(self.frame.index)

    def csv_frame(self) -> pd.DataFrame:
        """The CSV companion of Table 1: scale, method, order, in_run, in_paper, then ours, paper and
        ours - paper per metric."""
        frame = self.frame.rename_axis("method").reset_index()
        frame.insert(0, "scale", self.scale)
        return frame

    def rows(self) -> list[dict]:
        """The rows as the templates print them (`group_start`: the first row of another order)."""
        rows, previous = [], None
        for method, row in self.frame.iterrows():
            cells = []
            for metric in self.metrics:
                ours, paper, diff = (row[f"{metric.name}_{part}"] for part in ("ours", "paper", "diff"))
                cells.append({"metric": metric.name, "ours": ours, "paper": paper, "diff": diff,
                              "ours_text": format_plain(metric, ours), "paper_text": format_plain(metric, paper),
                              "diff_text": format_difference(metric, diff)})
            group = (row["order"], bool(row["in_run"]))
            rows.append({"method": method, "order": row["order"], "in_run": bool(row["in_run"]),
                         "in_paper": bool(row["in_paper"]), "proposed": method == self.reference.proposed,
                         "group_start": previous is not None and group != previous, "cells": cells})
            previous = group
        return rows

    def agreement_text(self, metric: MetricInfo) -> str:
        """`0.521 (34 methods, p = 1.2e-05)`."""
        found = next((a for a in self.agreement if a.metric == metric.name), None)
        if found is None or not math.isfinite(found.tau):
            n = found.n if found else 0
            return f"not defined ({n} method{'s' if n != 1 else ''} in both)"
        return f"{found.tau:+.3f} ({found.n} methods, p = {format_p(found.p_value)})"


def format_plain(metric: MetricInfo, value) -> str:
    """A value at the metric's decimals without unit, or an em dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return metric.format(float(value), unit=False)


def format_difference(metric: MetricInfo, value) -> str:
    """`+0.25`, `-0.0123`, `+0.00` (a difference that prints as zero carries no sign), or an em dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    shown = round(float(value), metric.decimals)
    return f"{(shown if shown != 0 else 0.0):+.{metric.decimals}f}"


def format_p(value: float) -> str:
    if not math.isfinite(value):
        return MISSING
    return f"{value:.2e}" if value < 1e-3 else f"{value:.3f}"


def kendall_tau(ours, paper) -> RankAgreement:
    """Kendall's tau-b (scipy's default) and its two-sided p-value over the pairs where both values
    are finite; NaN with fewer than two such pairs or when either side is constant. The metric name
    is left empty."""
    from scipy.stats import kendalltau

    x = np.asarray(ours, dtype=float)
    y = np.asarray(paper, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(keep.sum())
    if n < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return RankAgreement("", n, float("nan"), float("nan"))
    tau, p_value = kendalltau(x, y)
    return RankAgreement("", n, float(tau), float(p_value))


def recorded_datasets(data: ReportData) -> list[str | None]:
    """What each contributing run's manifest records as its data set (`dataset`: a name, or a table
    with `kind`/`name`), None where it records nothing."""
    found = []
    for run in data.runs:
        recorded = run.manifest.get("dataset")
        if isinstance(recorded, dict):
            recorded = recorded.get("kind") or recorded.get("name")
        found.append(recorded if isinstance(recorded, str) and recorded else None)
    return found or [None]


def judge_comparability(reference: PaperReference, data: ReportData, *, dataset_kind: str | None,
                        dataset_label: str, convention: str) -> Comparability:
    """Comparable when every contributing run used the paper's data set (the manifest's `dataset`,
    else `dataset_kind`, e.g. the profile's `dataset.kind`) and no method ran with demo weights. The text
    ends with the inference protocol: the paper states none, ours is that of `reports.protocols`."""
    wanted = reference.dataset.casefold()
    names = [recorded or dataset_kind for recorded in recorded_datasets(data)]
    reasons = []
    if not all(name and name.casefold() == wanted for name in names):
        reasons.append(f"the data set is {dataset_label}, not {reference.dataset}")
    demo = data.demo_weights
    if demo:
        reasons.append(f"{', '.join(demo)} ran with demo weights, not the authors'")
    protocol = (f"The paper does not state its inference protocol (each network on the whole image, or "
                f"each method's release script with its tiling and rounding); ours is {protocol_clause(data)}.")
    if reasons:
        text = (f"The comparison with the paper is only of form, not a reproduction: {'; '.join(reasons)}. "
                f"With different data and weights, these differences and rank agreements show how the report "
                f"sets a run beside the paper; they say nothing about whether the paper's numbers hold. {protocol}")
        return Comparability(False, tuple(reasons), text)
    description = CONVENTIONS.get(convention, convention)
    text = (f"This run used {reference.dataset} and no demo weights. The paper's metric convention is unstated "
            f"({reference.convention}); our PSNR and SSIM here are in convention '{convention}' ({description}), "
            f"MEF-SSIM is the official implementation's. The paper states no split or image size either, so "
            f"differences may come from the protocol as well as from the methods. {protocol}")
    return Comparability(True, (), text)


def no_numbers_sentence(reference: PaperReference, scale: int) -> str:
    """`the paper publishes no x4 numbers (its Table 1 is at x2)`."""
    return f"the paper publishes no x{scale} numbers (its Table 1 is at x{reference.scale})"


def compare_with_paper(data: ReportData, scale: int, convention: str, reference: PaperReference,
                       comparability: Comparability, methods: list[str]) -> PaperComparison | None:
    """The comparison at `scale` for `methods` (Table 1's, in its order); None when the paper has no
    numbers at that scale. The metrics are those the paper reports that the run scored."""
    if scale != reference.scale:
        return None
    metrics = [m for m in data.metrics if m.name in reference.metrics]
    means = table1_means(data, scale, convention, metrics, methods) if metrics else pd.DataFrame(index=methods)
    orders = {p.name: p.order for p in data.grid.pipelines}
    paper_only = [name for name in reference.methods if name not in set(methods)]
    index = [*methods, *paper_only]
    frame = pd.DataFrame(index=pd.Index(index, name="method"))
    frame["order"] = [orders.get(name) or reference.orders.get(name, "other") for name in index]
    frame["in_run"] = [name in set(methods) for name in index]
    frame["in_paper"] = [name in reference for name in index]
    agreement = []
    for metric in metrics:
        ours = means[metric.name].reindex(index).astype(float)
        paper = pd.Series([reference.value(name, metric.name) for name in index], index=index, dtype=float)
        frame[f"{metric.name}_ours"] = ours
        frame[f"{metric.name}_paper"] = paper
        frame[f"{metric.name}_diff"] = ours - paper
        found = kendall_tau(ours.values, paper.values)
        agreement.append(RankAgreement(metric.name, found.n, found.tau, found.p_value))
    return PaperComparison(scale, reference, metrics, frame, agreement, comparability)


def render_scatter(comparison: PaperComparison, path: Path, *, dpi: int = 130) -> Path:
    """One PNG, one panel per metric: the paper's value (x) against ours (y) for every method in
    both, the line y = x, joint methods in their own colour and named, the proposed method starred."""
    from matplotlib.figure import Figure

    metrics = comparison.metrics
    figure = Figure(figsize=(4.0 * max(1, len(metrics)), 4.2))
    frame = comparison.frame
    proposed = comparison.reference.proposed
    for i, metric in enumerate(metrics):
        ax = figure.add_subplot(1, max(1, len(metrics)), i + 1)
        both = frame[np.isfinite(frame[f"{metric.name}_ours"]) & np.isfinite(frame[f"{metric.name}_paper"])]
        x, y = both[f"{metric.name}_paper"], both[f"{metric.name}_ours"]
        if len(both):
            low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
            pad = 0.05 * (high - low) or 0.05 * max(abs(high), 1.0)
            ax.plot([low - pad, high + pad], [low - pad, high + pad], color="#999999", linestyle="--", linewidth=1,
                    label="y = x", zorder=1)
            ax.set_xlim(low - pad, high + pad)
            ax.set_ylim(low - pad, high + pad)
        for order, colour in ORDER_COLOURS.items():
            chosen = both[(both.order == order) & (both.index != proposed)]
            if len(chosen):
                joint = order == "joint"
                ax.scatter(chosen[f"{metric.name}_paper"], chosen[f"{metric.name}_ours"], s=46 if joint else 22,
                           color=colour, edgecolor="black" if joint else "none", linewidth=0.6, label=order,
                           zorder=3 if joint else 2)
                if joint:
                    for name, row in chosen.iterrows():
                        ax.annotate(name, (row[f"{metric.name}_paper"], row[f"{metric.name}_ours"]), fontsize=7,
                                    xytext=(4, -9), textcoords="offset points")
        if proposed in both.index:
            row = both.loc[proposed]
            ax.scatter([row[f"{metric.name}_paper"]], [row[f"{metric.name}_ours"]], s=140, marker="*",
                       color=PROPOSED_COLOUR, edgecolor="black", linewidth=0.6, label=f"{proposed} (proposed)", zorder=4)
            ax.annotate(f"{proposed} (proposed)", (row[f"{metric.name}_paper"], row[f"{metric.name}_ours"]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points", color=PROPOSED_COLOUR)
        unit = f" ({metric.unit.strip()})" if metric.unit.strip() else ""
        ax.set_xlabel(f"paper{unit}", fontsize=8)
        ax.set_ylabel(f"this run{unit}", fontsize=8)
        ax.tick_params(labelsize=7)
        found = next(a for a in comparison.agreement if a.metric == metric.name)
        tau = f"tau-b {found.tau:+.2f}" if math.isfinite(found.tau) else "tau-b undefined"
        ax.set_title(f"{metric.label.replace('$', '')}: {tau} (n = {found.n})", fontsize=9)
        if i == 0:
            ax.legend(fontsize=7, loc="upper left", frameon=False)
    note = "" if comparison.comparability.comparable else "  Form only: different data and weights."
    figure.suptitle(f"x{comparison.scale}: this run against {comparison.reference.short_citation}, Table 1.{note}",
                    fontsize=9)
    figure.tight_layout(rect=(0, 0, 1, 0.94))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    return path


def summary_lines(comparisons: list[PaperComparison], scales: list[int], reference: PaperReference) -> list[str]:
    """Lines for `report`'s summary, each starting `paper:` (the tau-b per metric, whether the run is
    comparable; a line per scale the paper has no numbers for)."""
    lines = []
    by_scale = {c.scale: c for c in comparisons}
    for scale in scales:
        comparison = by_scale.get(scale)
        if comparison is None:
            lines.append(f"paper: x{scale}: {no_numbers_sentence(reference, scale)}")
            continue
        taus = "; ".join(f"{m.label} {comparison.agreement_text(m)}" for m in comparison.metrics)
        lines.append(f"paper: x{scale} against {reference.short_citation} Table 1, Kendall's tau-b of the rankings: "
                     f"{taus or 'no common metric'}")
        if comparison.comparability.comparable:
            lines.append("paper: comparable data and weights; " + comparison.comparability.text.split(". ", 1)[1])
        else:
            lines.append("paper: comparison of form only, not a reproduction: "
                         + "; ".join(comparison.comparability.reasons))
    return lines
