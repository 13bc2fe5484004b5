"""The paper's own published numbers, shipped with the package as data (`reports/reference/`).

`paper.toml` says what the numbers are (citation, scale, data set, which CSV column is which metric
of `cfanet.metrics.registry`, Figure 3's panels); `paper_table1.csv` is the paper's Table 1, number
for number. Nothing here computes: `reports.vs_paper` compares a run with these values.
"""

from __future__ import annotations

import csv
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
ORDERS = ("SR+MEF", "MEF+SR", "joint")


@dataclass(frozen=True)
class PaperReference:
    """The paper's Table 1 and Figure 3 selection.

    `values[method][metric]`: the published mean (metric names as in our registry: psnr in dB, ssim,
    mef_ssim); `methods`: the paper's Table 1 rows in its order; `figure3_methods`: the methods of
    Figure 3 after its two input panels, in the paper's order.
    """

    authors: tuple[str, ...]
    title: str
    venue: str
    url: str
    proposed: str                               # the method the paper calls "Ours"
    scale: int
    dataset: str
    convention: str                             # what the paper says of its metric convention
    metrics: tuple[str, ...]                    # registry names, in the CSV's column order
    methods: tuple[str, ...]
    orders: Mapping[str, str]                   # method -> SR+MEF / MEF+SR / joint
    values: Mapping[str, Mapping[str, float]]
    figure3_scene: str
    figure3_scale: int
    figure3_inputs: tuple[str, ...]
    figure3_methods: tuple[str, ...]

    @property
    def citation(self) -> str:
        """`Rong Wang and Chunjiang Duanmu, "Coupled Feedback Attention Networks", CEUR ... (url)` (ASCII
        quotes: the same text serves HTML and LaTeX)."""
        return f"{' and '.join(self.authors)}, \"{self.title}\", {self.venue} ({self.url})"

    @property
    def offline_citation(self) -> str:
        """The citation with the URL without its scheme, as the report pages print it (they are read
        offline and hold no live links)."""
        return self.citation.replace(self.url, self.short_url)

    @property
    def short_url(self) -> str:
        """`ceur-ws.org/Vol-3351/paper02.pdf`."""
        return self.url.split("://", 1)[-1]

    @property
    def short_citation(self) -> str:
        """`Wang and Duanmu, CEUR Workshop Proceedings, Vol-3351`."""
        surnames = " and ".join(name.split()[-1] for name in self.authors)
        return f"{surnames}, {', '.join(self.venue.split(', ')[:2])}"

    def value(self, method: str, metric: str) -> float | None:
        """The published value, or None where the paper has no such method or metric."""
        return self.values.get(method, {}).get(metric)

    def __contains__(self, method: str) -> bool:
        return method in self.values


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: {text!r} is not a finite number")
    return value


def _read_table(path: Path, columns: Mapping[str, str], names: Mapping[str, str]):
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{path}: no rows")
    missing = [c for c in ("method", "order", *columns) if c not in rows[0]]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    methods, orders, values = [], {}, {}
    for line, row in enumerate(rows, start=2):
        method = names.get(row["method"], row["method"])
        if method in values:
            raise ValueError(f"{path}:{line}: {method} appears twice")
        if row["order"] not in ORDERS:
            raise ValueError(f"{path}:{line}: order {row['order']!r} is none of {', '.join(ORDERS)}")
        methods.append(method)
        orders[method] = row["order"]
        values[method] = MappingProxyType({metric: _number(row[column], f"{path}:{line} {column}")
                                           for column, metric in columns.items()})
    return tuple(methods), MappingProxyType(orders), MappingProxyType(values)


@lru_cache(maxsize=None)
def load_paper_reference(directory: str | Path = REFERENCE_DIR) -> PaperReference:
    """Read `directory/paper.toml` and the table it names. Raises ValueError when they disagree (a
    Figure 3 method or the proposed method missing from the table, a value that is not a number)."""
    directory = Path(directory)
    meta = tomllib.loads((directory / "paper.toml").read_text(encoding="utf-8"))
    paper, table, figure = meta["paper"], meta["table1"], meta["figure3"]
    columns = dict(table["metrics"])
    methods, orders, values = _read_table(directory / table["file"], columns, dict(table.get("names") or {}))
    unknown = [name for name in [*figure["methods"], paper["proposed"]] if name not in values]
    if unknown:
        raise ValueError(f"{directory / 'paper.toml'}: {', '.join(unknown)} not in {table['file']}")
    return PaperReference(
        authors=tuple(paper["authors"]), title=paper["title"], venue=paper["venue"], url=paper["url"],
        proposed=paper["proposed"], scale=int(table["scale"]), dataset=table["dataset"],
        convention=table["convention"], metrics=tuple(columns.values()), methods=methods, orders=orders,
        values=values, figure3_scene=figure["scene"], figure3_scale=int(figure["scale"]),
        figure3_inputs=tuple(figure["inputs"]), figure3_methods=tuple(figure["methods"]))
