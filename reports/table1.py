"""Table 1 of the paper: the mean of each Table 1 metric for every method at one scale.

Layout (as in the paper, following the run's grid, `reports.grid`): a block "Super Resolution +
Image Fusion" with the SR models as rows and the MEF methods as column groups, a block "Image
Fusion + Super Resolution" with the MEF methods as rows and the SR models as column groups, then
one row per joint network (then one per method the grid cannot place). The metrics are those
marked `in_table1` (the paper's PSNR, SSIM and MEF-SSIM by default), in the registry's order.

Values are means over scenes of the per-image scores. For each metric the best of all methods is
bold and the second underlined, judged on the values *as printed* (each metric's `decimals`, e.g.
PSNR to 2, SSIM and MEF-SSIM to 4): every method showing the best printed value is bold, every
method showing the next printed value is underlined (ties share a mark; a tie for first does not
use up the second place). "Best" is the highest value, or the lowest for a metric where lower is
better.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from reports.data import ReportData
from reports.metrics import MetricInfo

BEST, SECOND = "best", "second"
BLOCK_TITLES = {"SR+MEF": ("Super Resolution + Image Fusion", "SR model", "MEF method"),
                "MEF+SR": ("Image Fusion + Super Resolution", "MEF method", "SR model")}
JOINT_TITLE = "Joint MEF and SR"
OTHER_TITLE = "Other methods"


def format_value(metric: MetricInfo, value: float, *, unit: bool = True) -> str:
    """`21.24 dB`, `0.8140`; `inf dB` for identical images; an en dash for a missing value."""
    return metric.format(None if value is None else float(value), unit=unit)


def rank_marks(values: pd.Series, decimals: int, higher_is_better: bool = True) -> pd.Series:
    """BEST / SECOND / "" per entry of `values`, on values rounded to `decimals`."""
    shown = values.astype(float).round(decimals)
    marks = pd.Series("", index=values.index, dtype=object)
    levels = sorted(set(shown.dropna()), reverse=higher_is_better)
    if levels:
        marks[shown == levels[0]] = BEST
    if len(levels) > 1:
        marks[shown == levels[1]] = SECOND
    return marks


def table1_means(data: ReportData, scale: int, convention: str, metrics: list[MetricInfo],
                 methods: list[str]) -> pd.DataFrame:
    """Index: `methods` in Table 1 order; one column per metric of `metrics` (means over scenes, NaN
    where missing) and n_scenes."""
    per_image = data.main_scores(scale, convention, metrics)
    means = per_image.groupby(level="method").mean()
    counts = per_image.groupby(level="method").size().rename("n_scenes")
    table = means.join(counts).reindex(list(methods))
    table["n_scenes"] = table["n_scenes"].fillna(0).astype(int)
    return table[[m.name for m in metrics] + ["n_scenes"]]


@dataclass(frozen=True)
class Cell:
    method: str | None     # None: no method has this place in the grid (an empty cell)
    metric: str
    value: float
    text: str          # with unit: "21.24 dB"
    number: str        # without unit: "21.24"
    mark: str          # BEST, SECOND or ""
    unit: str = ""     # " dB"


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


@dataclass(frozen=True)
class SingleBlock:
    """Rows of one method each (the joint networks, or methods the grid cannot place)."""

    title: str
    rows: list[Row]


@dataclass
class Table1:
    scale: int
    convention: str
    dataset: str
    n_scenes: int
    blocks: list[Block]
    singles: list[SingleBlock]
    means: pd.DataFrame
    marks: pd.DataFrame
    metric_infos: list[MetricInfo]
    notes: list[str] = field(default_factory=list)

    @property
    def joint(self) -> list[Row]:
        return [row for block in self.singles if block.title == JOINT_TITLE for row in block.rows]

    @property
    def metrics(self) -> list[MetricInfo]:
        return list(self.metric_infos)

    @property
    def methods(self) -> list[str]:
        return list(self.means.index)

    @property
    def n_columns(self) -> int:
        groups = max([len(block.groups) for block in self.blocks] + [1])
        return 1 + len(self.metric_infos) * groups

    @property
    def padding(self) -> int:
        """Empty columns after a single-method row."""
        return self.n_columns - 1 - len(self.metric_infos)


def build_table1(data: ReportData, scale: int, convention: str, dataset: str) -> Table1:
    """The table's cells, marks and captions' facts for `scale` and the PSNR/SSIM `convention`."""
    metrics = data.table1_metrics
    layout = data.grid.layout(data.methods)
    methods = layout.methods
    means = table1_means(data, scale, convention, metrics, methods)
    marks = pd.DataFrame({m.name: rank_marks(means[m.name], m.decimals, m.higher_is_better) for m in metrics},
                         index=means.index)

    def cell(method: str | None, metric: MetricInfo) -> Cell:
        if method is None:
            return Cell(None, metric.name, float("nan"), "", "", "", metric.unit)
        value = float(means.at[method, metric.name])
        return Cell(method, metric.name, value, format_value(metric, value), format_value(metric, value, unit=False),
                    marks.at[method, metric.name], metric.unit)

    def row(label: str, names: list[str | None]) -> Row:
        return Row(label, [cell(name, metric) for name in names for metric in metrics])

    blocks = []
    for order, rows, groups, cells in layout.blocks:
        title, row_header, group_header = BLOCK_TITLES[order]
        blocks.append(Block(title, row_header, group_header, list(groups),
                            [row(r, [cells.get((r, g)) for g in groups]) for r in rows]))
    singles = [SingleBlock(title, [row(name, [name]) for name in names])
               for title, names in ((JOINT_TITLE, layout.joint), (OTHER_TITLE, layout.other)) if names]
    scene_counts = means["n_scenes"][means["n_scenes"] > 0]
    n_scenes = int(scene_counts.max()) if len(scene_counts) else 0
    notes = []
    if len(scene_counts) and scene_counts.min() != scene_counts.max():
        notes.append(f"methods were scored on {scene_counts.min()} to {scene_counts.max()} scenes")
    missing = [name for name in methods if means.at[name, "n_scenes"] == 0]
    if missing:
        notes.append(f"no results at this scale for {', '.join(missing)}")
    return Table1(scale, convention, dataset, n_scenes, blocks, singles, means, marks, list(metrics), notes)
