"""Table 1 of the paper: mean PSNR, SSIM and MEF-SSIM of the 34 methods at one scale.

Layout (as in the paper): a block "Super Resolution + Image Fusion" with the SR models as rows and
the MEF methods as column groups, a block "Image Fusion + Super Resolution" with the MEF methods as
rows and the SR models as column groups, then the rows of the joint networks CF-Net and CFANet.

Values are means over scenes of the per-image scores. For each metric the best of all 34 methods
is bold and the second underlined, judged on the values *as printed* (PSNR to 2 decimals, SSIM and
MEF-SSIM to 4): every method showing the highest printed value is bold, every method showing the
next lower printed value is underlined (ties share a mark; a tie for first does not use up the
second place). Higher is better for all three metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipelines.catalog import JOINT_MODELS, MEF_METHODS, SR_MODELS
from reports.data import METRIC_LABELS, METRICS, PIPELINE_NAMES, ReportData

DECIMALS = {"psnr": 2, "ssim": 4, "mef_ssim": 4}
BEST, SECOND = "best", "second"


def format_value(metric: str, value: float, *, unit: bool = True) -> str:
    """`21.24 dB`, `0.8140`; `inf dB` for identical images; an en dash for a missing value."""
    if value is None or np.isnan(value):
        return "\u2013"
    if np.isinf(value):
        return ("inf dB" if unit and metric == "psnr" else "inf") if value > 0 else "-inf"
    text = f"{value:.{DECIMALS[metric]}f}"
    return f"{text} dB" if metric == "psnr" and unit else text


def rank_marks(values: pd.Series, decimals: int) -> pd.Series:
    """BEST / SECOND / "" per entry of `values` (higher is better), on values rounded to `decimals`."""
    shown = values.astype(float).round(decimals)
    marks = pd.Series("", index=values.index, dtype=object)
    levels = sorted(set(shown.dropna()), reverse=True)
    if levels:
        marks[shown == levels[0]] = BEST
    if len(levels) > 1:
        marks[shown == levels[1]] = SECOND
    return marks


def table1_means(data: ReportData, scale: int, convention: str) -> pd.DataFrame:
    """Index: the 34 methods in Table 1 order; columns psnr, ssim, mef_ssim (means over scenes,
    NaN where missing) and n_scenes."""
    per_image = data.main_scores(scale, convention)
    means = per_image.groupby(level="method").mean()
    counts = per_image.groupby(level="method").size().rename("n_scenes")
    table = means.join(counts).reindex(list(PIPELINE_NAMES))
    table["n_scenes"] = table["n_scenes"].fillna(0).astype(int)
    return table[list(METRICS) + ["n_scenes"]]


@dataclass(frozen=True)
class Cell:
    method: str
    metric: str
    value: float
    text: str          # with unit: "21.24 dB"
    number: str        # without unit: "21.24"
    mark: str          # BEST, SECOND or ""


@dataclass(frozen=True)
class Row:
    label: str
    cells: list[Cell]


@dataclass(frozen=True)
class Block:
    title: str
    row_header: str          # what the rows are, e.g. "SR model"
    group_header: str        # what the column groups are, e.g. "MEF method"
    groups: list[str]
    rows: list[Row]


@dataclass
class Table1:
    scale: int
    convention: str
    dataset: str
    n_scenes: int
    blocks: list[Block]
    joint: list[Row]
    means: pd.DataFrame
    marks: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> list[tuple[str, str]]:
        return [(metric, METRIC_LABELS[metric]) for metric in METRICS]

    @property
    def n_columns(self) -> int:
        return 1 + 3 * max(len(block.groups) for block in self.blocks)


def build_table1(data: ReportData, scale: int, convention: str, dataset: str) -> Table1:
    """The table's cells, marks and captions' facts for `scale` and the PSNR/SSIM `convention`."""
    means = table1_means(data, scale, convention)
    marks = pd.DataFrame({metric: rank_marks(means[metric], DECIMALS[metric]) for metric in METRICS})

    def cell(method: str, metric: str) -> Cell:
        value = float(means.at[method, metric])
        return Cell(method, metric, value, format_value(metric, value), format_value(metric, value, unit=False),
                    marks.at[method, metric])

    def row(label: str, methods: list[str]) -> Row:
        return Row(label, [cell(name, metric) for name in methods for metric in METRICS])

    blocks = [
        Block("Super Resolution + Image Fusion", "SR model", "MEF method", list(MEF_METHODS),
              [row(sr, [f"{sr}+{mef}" for mef in MEF_METHODS]) for sr in SR_MODELS]),
        Block("Image Fusion + Super Resolution", "MEF method", "SR model", list(SR_MODELS),
              [row(mef, [f"{mef}+{sr}" for sr in SR_MODELS]) for mef in MEF_METHODS]),
    ]
    joint = [row(name, [name]) for name in JOINT_MODELS]
    scene_counts = means["n_scenes"][means["n_scenes"] > 0]
    n_scenes = int(scene_counts.max()) if len(scene_counts) else 0
    notes = []
    if len(scene_counts) and scene_counts.min() != scene_counts.max():
        notes.append(f"methods were scored on {scene_counts.min()} to {scene_counts.max()} scenes")
    missing = [name for name in PIPELINE_NAMES if means.at[name, "n_scenes"] == 0]
    if missing:
        notes.append(f"no results for {', '.join(missing)}")
    return Table1(scale, convention, dataset, n_scenes, blocks, joint, means, marks, notes)
