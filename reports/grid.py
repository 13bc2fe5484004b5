"""Which methods a report shows, how they are composed and in which order, from the run manifests.

A run's manifest holds `grid`, the run's method selection:

    {"pipelines": [{"name": "RCAN+MGFF", "order": "SR+MEF", "sr": "RCAN", "mef": "MGFF", "joint": None}, ...],
     "components": {"RCAN": {"kind": "sr"}, "MGFF": {"kind": "mef"}, "CF-Net": {"kind": "joint"}, ...},
     "reference": "CFANet"}

`order` is "SR+MEF" (SR each exposure, then fuse), "MEF+SR" (fuse, then SR) or "joint";
`reference` is the proposed method the statistics page compares every other method with (or None).
A report merges the grids of its contributing runs (the latest run's first; its `reference` wins)
and adds any method with results that no grid lists. Databases written before manifests recorded a
grid have none: their methods are derived from the names, with the components of the paper's
comparison (`LEGACY_KINDS`) telling an SR model from an MEF method; a name the derivation cannot
place goes to a block of its own ("Other methods").

Table 1's layout follows the grid: an SR+MEF block (SR models as rows, MEF methods as column groups,
each in the order they first appear in the grid), an MEF+SR block (the transpose), then one row per
joint method, then one row per other method. Rows, groups and methods without results are left out.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field

ORDERS = ("SR+MEF", "MEF+SR", "joint", "other")

# The components of the paper's comparison, for databases whose manifests hold no grid (written
# before the grid was recorded). New runs never need this table.
LEGACY_KINDS = {
    **{name: "sr" for name in ("DBPN", "RCAN", "SRFBN", "SwinIR")},
    **{name: "mef" for name in ("MGFF", "Fast-SPD-MEF", "MEF-Net", "U2Fusion")},
    **{name: "joint" for name in ("CF-Net", "CFANet")},
}
LEGACY_REFERENCE = "CFANet"
LEGACY_CLASSICAL = ("MGFF", "Fast-SPD-MEF")


@dataclass(frozen=True)
class PipelineInfo:
    """One compared method: its name, how it is composed, and its components."""

    name: str
    order: str                 # one of ORDERS
    sr: str | None = None
    mef: str | None = None
    joint: str | None = None

    @property
    def components(self) -> list[str]:
        if self.order == "SR+MEF":
            return [c for c in (self.sr, self.mef) if c]
        if self.order == "MEF+SR":
            return [c for c in (self.mef, self.sr) if c]
        if self.order == "joint":
            return [self.joint or self.name]
        return []


@dataclass(frozen=True)
class Layout:
    """Table 1's arrangement of a set of methods (see the module docstring)."""

    blocks: list[tuple[str, list[str], list[str], dict[tuple[str, str], str]]]  # order, rows, groups, cells
    joint: list[str]
    other: list[str]

    @property
    def methods(self) -> list[str]:
        """The methods in reading order: block by block, row by row."""
        names = [cells[(row, group)] for _, rows, groups, cells in self.blocks for row in rows for group in groups
                 if (row, group) in cells]
        return names + self.joint + self.other


@dataclass
class Grid:
    pipelines: list[PipelineInfo]
    components: dict[str, dict] = field(default_factory=dict)   # name -> {"kind": ..., ...}
    reference: str | None = None
    recorded: bool = True     # False: derived from result names (no manifest had a grid)

    def __post_init__(self) -> None:
        self._by_name = {p.name: p for p in self.pipelines}

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.pipelines]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def get(self, name: str) -> PipelineInfo | None:
        return self._by_name.get(name)

    def find(self, name: str, among: Iterable[str] | None = None) -> str:
        """The method called `name` (case-insensitive) among `among` (default: the grid); an unknown
        name raises KeyError naming close matches."""
        names = list(among) if among is not None else self.names
        by_lower = {n.lower(): n for n in names}
        if name.lower() in by_lower:
            return by_lower[name.lower()]
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; methods: {', '.join(names[:8])}"
        raise KeyError(f"unknown method {name!r}{hint}")

    def kind(self, component: str) -> str | None:
        entry = self.components.get(component)
        kind = entry.get("kind") if isinstance(entry, dict) else None
        return kind if isinstance(kind, str) else LEGACY_KINDS.get(component)

    def is_classical(self, component: str) -> bool:
        """True for a component without learned parameters: the manifest says `"learned": false`, or
        (no such entry) it is one of the paper's classical MEF methods."""
        entry = self.components.get(component)
        if isinstance(entry, dict) and isinstance(entry.get("learned"), bool):
            return not entry["learned"]
        return component in LEGACY_CLASSICAL

    def layout(self, present: Iterable[str] | None = None) -> Layout:
        """Table 1's arrangement of the grid's methods that are in `present` (default: all)."""
        keep = set(self.names if present is None else present)
        blocks = []
        crowded = []  # a second method with the same two components: no cell left, listed with the others
        for order, row_of, group_of in (("SR+MEF", "sr", "mef"), ("MEF+SR", "mef", "sr")):
            cells: dict[tuple[str, str], str] = {}
            for p in self.pipelines:
                if p.order == order and p.name in keep:
                    if cells.setdefault((getattr(p, row_of), getattr(p, group_of)), p.name) != p.name:
                        crowded.append(p.name)
            rows = list(dict.fromkeys(row for row, _ in cells))
            groups = list(dict.fromkeys(group for _, group in cells))
            if cells:
                blocks.append((order, rows, groups, cells))
        joint = [p.name for p in self.pipelines if p.order == "joint" and p.name in keep]
        other = [p.name for p in self.pipelines if p.order == "other" and p.name in keep or p.name in crowded]
        return Layout(blocks, joint, other)


def _pipeline(entry) -> PipelineInfo | None:
    """A PipelineInfo from a manifest's grid entry, or None when it is not one."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
        return None
    parts = {key: entry.get(key) if isinstance(entry.get(key), str) and entry.get(key) else None
             for key in ("sr", "mef", "joint")}
    order = entry.get("order")
    if order in ("SR+MEF", "MEF+SR") and not (parts["sr"] and parts["mef"]):
        order = "other"
    if order not in ORDERS:
        order = "other"
    if order == "joint" and parts["joint"] is None:
        parts["joint"] = entry["name"]
    return PipelineInfo(entry["name"], order, **parts)


def derive_pipeline(name: str, kinds: dict[str, str]) -> PipelineInfo:
    """A method known only by name: `A+B` with A an SR model and B an MEF method (or the reverse),
    by `kinds`; a joint method by its own kind; anything else goes to "other"."""
    if kinds.get(name) == "joint":
        return PipelineInfo(name, "joint", joint=name)
    first, plus, second = name.partition("+")
    if plus:
        if kinds.get(first) == "sr" and kinds.get(second) == "mef":
            return PipelineInfo(name, "SR+MEF", sr=first, mef=second)
        if kinds.get(first) == "mef" and kinds.get(second) == "sr":
            return PipelineInfo(name, "MEF+SR", sr=second, mef=first)
    return PipelineInfo(name, "other")


def _derived_sort_key(pipeline: PipelineInfo, position: dict[str, int]) -> tuple:
    big = len(position)
    block = ORDERS.index(pipeline.order)
    if pipeline.order == "other":
        return (block, big, big, pipeline.name)
    first, *rest = pipeline.components
    return (block, position.get(first, big), position.get(rest[0], big) if rest else 0, pipeline.name)


def collect_grid(manifests: list[dict], result_methods: Iterable[str]) -> Grid:
    """The grid of a report: the grids of `manifests` (latest first) merged, plus a derived entry for
    every method in `result_methods` that none lists (see the module docstring)."""
    pipelines: dict[str, PipelineInfo] = {}
    components: dict[str, dict] = {}
    reference: str | None = None
    reference_found = False
    for manifest in manifests:
        grid = manifest.get("grid") if isinstance(manifest, dict) else None
        if not isinstance(grid, dict):
            continue
        for entry in grid.get("pipelines") or []:
            info = _pipeline(entry)
            if info is not None and info.name not in pipelines:
                pipelines[info.name] = info
        found = grid.get("components")
        if isinstance(found, dict):
            for name, entry in found.items():
                if isinstance(name, str) and isinstance(entry, dict) and name not in components:
                    components[name] = entry
        if not reference_found and "reference" in grid:
            reference_found = True
            reference = grid["reference"] if isinstance(grid["reference"], str) else None
    recorded = bool(pipelines) or reference_found
    missing = [name for name in dict.fromkeys(result_methods) if name not in pipelines]
    if missing:
        kinds = {**LEGACY_KINDS}
        for name, entry in components.items():
            if isinstance(entry.get("kind"), str):
                kinds[name] = entry["kind"]
        legacy = list(LEGACY_KINDS)
        seen = [c for p in pipelines.values() for c in p.components]
        position = {name: i for i, name in enumerate(dict.fromkeys(seen + legacy))}
        derived = sorted((derive_pipeline(name, kinds) for name in missing),
                         key=lambda p: _derived_sort_key(p, position))
        for info in derived:
            pipelines[info.name] = info
    ordered = list(pipelines.values())
    if not recorded:
        names = set(pipelines)
        reference = LEGACY_REFERENCE if LEGACY_REFERENCE in names else None
    grid = Grid(ordered, components, reference, recorded)
    # Table 1's reading order is the order every page lists methods in
    order = {name: i for i, name in enumerate(grid.layout().methods)}
    grid.pipelines = sorted(ordered, key=lambda p: order[p.name])
    grid.__post_init__()
    return grid
