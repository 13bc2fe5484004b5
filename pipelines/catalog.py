"""The compared methods (pipelines) of a profile: its grid of SR x MEF compositions plus joint methods.

Names follow the order of the stages: `RCAN+MGFF` upscales each exposure with RCAN and then fuses
with MGFF (SR+MEF); `MGFF+RCAN` fuses the LR pair with MGFF and then upscales (MEF+SR). The grid
is the profile's `[grid]` selection of registered methods (by default the paper's: every method
whose descriptor has a `paper_order`), so its size is never written down: it is
len(SR) x len(MEF) x 2 + len(joint).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from cfanet.methods import MethodTable
from pipelines.config import ConfigError, GridConfig

ORDERS = ("SR+MEF", "MEF+SR", "joint")


@dataclass(frozen=True)
class PipelineSpec:
    """One compared method: its display name, its kind and the stages it chains."""

    name: str
    order: Literal["SR+MEF", "MEF+SR", "joint"]
    sr: str | None = None
    mef: str | None = None
    joint: str | None = None

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(n for n in (self.sr, self.mef, self.joint) if n)

    def describe(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Grid:
    """The methods of each kind that enter the comparison, in table order."""

    sr: tuple[str, ...]
    mef: tuple[str, ...]
    joint: tuple[str, ...]

    def pipelines(self) -> list[PipelineSpec]:
        """Table 1's rows: SR+MEF, then MEF+SR, then the joint methods."""
        specs = [PipelineSpec(f"{sr}+{mef}", "SR+MEF", sr=sr, mef=mef) for sr in self.sr for mef in self.mef]
        specs += [PipelineSpec(f"{mef}+{sr}", "MEF+SR", sr=sr, mef=mef) for mef in self.mef for sr in self.sr]
        specs += [PipelineSpec(name, "joint", joint=name) for name in self.joint]
        return specs


def paper_grid(table: MethodTable) -> Grid:
    """The paper's selection: the methods with a `paper_order`, in that order."""
    def kind(name: str) -> tuple[str, ...]:
        return tuple(s.name for s in sorted((s for s in table.of_kind(name) if s.paper_order is not None),
                                            key=lambda s: s.paper_order))
    return Grid(kind("sr"), kind("mef"), kind("joint"))


def profile_grid(table: MethodTable, grid: GridConfig, source: str = "<config>", profile: str = "") -> Grid:
    """The profile's `[grid]` selection (kinds it leaves out: the paper's); every name must be a
    registered method of that kind (canonical spelling returned)."""
    default = paper_grid(table)
    chosen = {}
    for kind in ("sr", "mef", "joint"):
        names = getattr(grid, kind)
        if names is None:
            chosen[kind] = getattr(default, kind)
            continue
        resolved = []
        for i, name in enumerate(names):
            spec = table.find(name)
            key = f"profiles.{profile}.grid.{kind}[{i}]" if profile else f"grid.{kind}[{i}]"
            if spec is None:
                raise ConfigError(source, key, f"unknown method {name!r}; registered {kind} methods: "
                                               f"{', '.join(s.name for s in table.of_kind(kind))}")
            if spec.kind != kind:
                raise ConfigError(source, key, f"{spec.name} is a {spec.kind} method, not {kind}")
            if spec.name in resolved:
                raise ConfigError(source, key, f"{spec.name} is listed twice")
            resolved.append(spec.name)
        chosen[kind] = tuple(resolved)
    return Grid(**chosen)


def find_pipeline(name: str, table: MethodTable, grid: Grid) -> PipelineSpec:
    """The pipeline called `name` (case-insensitive): one of the grid's, any composition `SR+MEF` or
    `MEF+SR` of registered methods, or a joint method. An unknown name lists close matches."""
    listed = {spec.name.lower(): spec for spec in grid.pipelines()}
    if name.lower() in listed:
        return listed[name.lower()]
    parts = name.split("+")
    specs = [table.find(part) for part in parts]
    if len(parts) == 1 and specs[0] is not None and specs[0].kind == "joint":
        return PipelineSpec(specs[0].name, "joint", joint=specs[0].name)
    if len(parts) == 2 and None not in specs:
        first, second = specs
        if (first.kind, second.kind) == ("sr", "mef"):
            return PipelineSpec(f"{first.name}+{second.name}", "SR+MEF", sr=first.name, mef=second.name)
        if (first.kind, second.kind) == ("mef", "sr"):
            return PipelineSpec(f"{first.name}+{second.name}", "MEF+SR", sr=second.name, mef=first.name)
    import difflib

    close = difflib.get_close_matches(name, [s.name for s in grid.pipelines()], n=3)
    hint = (f"; did you mean {', '.join(close)}?" if close else
            "; a pipeline is SR+MEF, MEF+SR or a joint method (`cfanet-bench list` shows them)")
    raise KeyError(f"unknown method {name!r}{hint}")
