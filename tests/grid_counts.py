"""Sizes of the default (paper) grid, derived from the registry so that no test types a count."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.catalog import paper_grid
from pipelines.registry import methods


@dataclass(frozen=True)
class GridCounts:
    pipelines: int          # compared methods (Table 1 rows)
    stages_per_scene: int   # shared stages of one scene: 2s + sm SR runs, m + sm MEF runs, j joint runs
    deep_methods: int       # components that load weights
    components: int


def paper_counts() -> GridCounts:
    table = methods()
    grid = paper_grid(table)
    s, m, j = len(grid.sr), len(grid.mef), len(grid.joint)
    names = grid.sr + grid.mef + grid.joint
    return GridCounts(len(grid.pipelines()), (2 * s + s * m) + (m + s * m) + j,
                      sum(table.specs[n].deep for n in names), len(names))
