"""Which inference protocol each method of a report ran under, and the sentence every caption carries.

Each component (an SR model, an MEF method, a joint network) runs under a protocol:

- "exact" (the default): the network on the whole image, its output rounded once (half up) to 8 bits
  by the harness;
- "official": the method's release script bit for bit (chopped quarters for RCAN and SRFBN, averaged
  tiles for SwinIR, truncation for CF-Net and MEF-Net, half-to-even rounding for the SR models).

The paper does not say which protocol produced its numbers, so every caption says which one ran.

A run's manifest records it per component: `manifest["grid"]["components"][NAME]["protocol"]` (what
ran) and `["protocol_asked"]` (what the configuration asked; a method without an official protocol
asked "official" runs "exact"). Manifests written before protocols existed lack both keys: everything
ran exact then. Results of different methods can come from different runs (`ReportData.method_runs`),
so the protocol is read per method (pipeline) from the manifest of the run its scores come from; a
component can then have run under one protocol in one pipeline and another in the next, which the
sentence says pipeline by pipeline.

Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reports.grid import _pipeline

EXACT = "exact"
OFFICIAL = "official"
DEFAULT = EXACT                # what a manifest without the keys ran (every run before protocols)
EXACT_DESCRIPTION = "each network on the whole image, its output rounded once to 8 bits"
OFFICIAL_DESCRIPTION = "each as its release script runs it, bit for bit"
PREFIX = "Inference protocol: "
KIND_ORDER = ("sr", "mef", "joint")


@dataclass(frozen=True)
class ComponentRun:
    """One component of one compared method, as the run that scored that method recorded it."""

    pipeline: str
    component: str
    protocol: str            # what ran: "exact" or "official"
    asked: str               # what the configuration asked
    run_id: str | None
    kind: str | None = None  # "sr", "mef", "joint" where the manifest says


def _grid(manifest) -> dict:
    grid = manifest.get("grid") if isinstance(manifest, dict) else None
    return grid if isinstance(grid, dict) else {}


def _components_entry(manifest, component: str) -> dict:
    components = _grid(manifest).get("components")
    entry = components.get(component) if isinstance(components, dict) else None
    return entry if isinstance(entry, dict) else {}


def recorded_protocol(manifest: dict, component: str) -> tuple[str, str]:
    """(protocol ran, protocol asked) of `component` in one run's manifest; ("exact", "exact") when the
    manifest does not record them (written before protocols existed). A recorded protocol without a
    recorded request counts as asked."""
    entry = _components_entry(manifest, component)
    ran = entry.get("protocol")
    ran = ran if isinstance(ran, str) and ran else DEFAULT
    asked = entry.get("protocol_asked")
    return ran, asked if isinstance(asked, str) and asked else ran


def _pipeline_components(name: str, manifest: dict, data) -> list[str]:
    """The components of pipeline `name`: as its own run's grid lists them, else as the report's
    grid does, else the pipeline itself (a method the grid cannot place)."""
    for entry in _grid(manifest).get("pipelines") or []:
        info = _pipeline(entry)
        if info is not None and info.name == name and info.components:
            return info.components
    grid = getattr(data, "grid", None)
    info = grid.get(name) if grid is not None else None
    if info is not None and info.components:
        return info.components
    return [name]


def _contributions(data, methods: Iterable[str] | None) -> list[tuple[str, str | None, dict]]:
    """(pipeline, run_id, manifest) for each method with results (restricted to `methods`), in the
    report's order. A data object without `method_runs` (a bare one in tests) reads the pipelines its
    runs' grids list, the latest run's winning."""
    method_runs = getattr(data, "method_runs", None)
    found: dict[str, tuple[str | None, dict]] = {}
    if method_runs is None:
        for run in getattr(data, "runs", None) or []:
            manifest = getattr(run, "manifest", None) or {}
            for entry in _grid(manifest).get("pipelines") or []:
                info = _pipeline(entry)
                if info is not None:
                    found[info.name] = (getattr(run, "run_id", None), manifest)
    else:
        manifests = {run.run_id: run.manifest for run in
                     [*(getattr(data, "all_runs", None) or []), *(getattr(data, "runs", None) or [])]}
        for name, run_id in method_runs.items():
            found[name] = (run_id, manifests.get(run_id) or {})
    grid = getattr(data, "grid", None)
    order = {name: i for i, name in enumerate(grid.names)} if grid is not None else {}
    names = sorted(found, key=lambda n: (order.get(n, len(order)), n)) if order else list(found)
    if methods is not None:
        keep = set(methods)
        names = [name for name in names if name in keep]
    return [(name, *found[name]) for name in names]


def component_runs(data, methods: Iterable[str] | None = None) -> list[ComponentRun]:
    """Every (method, component) of the report (or of `methods`) with the protocol it ran under."""
    grid = getattr(data, "grid", None)
    found = []
    for name, run_id, manifest in _contributions(data, methods):
        for component in _pipeline_components(name, manifest, data):
            ran, asked = recorded_protocol(manifest, component)
            kind = _components_entry(manifest, component).get("kind")
            if not isinstance(kind, str) and grid is not None:
                kind = grid.kind(component)
            found.append(ComponentRun(name, component, ran, asked, run_id, kind if isinstance(kind, str) else None))
    return found


def pipeline_protocols(data, methods: Iterable[str] | None = None) -> dict[str, dict[str, str]]:
    """Method (pipeline) -> component -> the protocol it ran under, e.g.
    {"RCAN+MGFF": {"RCAN": "official", "MGFF": "exact"}, "CFANet": {"CFANet": "exact"}}."""
    table: dict[str, dict[str, str]] = {}
    for entry in component_runs(data, methods):
        table.setdefault(entry.pipeline, {})[entry.component] = entry.protocol
    return table


def component_protocols(data, methods: Iterable[str] | None = None) -> dict[str, dict[str, str]]:
    """Component -> method (pipeline) -> protocol: one value per component when every method that
    uses it came from runs that agree. Components are listed SR models first, then MEF methods, then
    joint networks, each in the order the report first meets them."""
    return _by_component(component_runs(data, methods))


def _by_component(entries: list[ComponentRun]) -> dict[str, dict[str, str]]:
    first = {}
    for i, entry in enumerate(entries):
        first.setdefault(entry.component, (KIND_ORDER.index(entry.kind) if entry.kind in KIND_ORDER
                                           else len(KIND_ORDER), i))
    table: dict[str, dict[str, str]] = {name: {} for name in sorted(first, key=first.get)}
    for entry in entries:
        table[entry.component][entry.pipeline] = entry.protocol
    return table


def _join(names: list[str]) -> str:
    """[a] -> a; [a, b] -> "a and b"; [a, b, c] -> "a, b and c"."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _mixed_clause(component: str, by_pipeline: dict[str, str]) -> str:
    """`RCAN ran official in RCAN+MGFF but exact in MGFF+RCAN`: the methods of the smaller side named,
    those of the larger side too unless there are more than two (`but exact in the 7 other methods
    using RCAN`)."""
    groups: dict[str, list[str]] = {}
    for pipeline, protocol in by_pipeline.items():
        groups.setdefault(protocol, []).append(pipeline)
    ordered = sorted(groups.items(), key=lambda item: (len(item[1]), item[0] != OFFICIAL, item[0]))
    parts = []
    for i, (protocol, pipelines) in enumerate(ordered):
        if i == len(ordered) - 1 and len(ordered) > 1 and len(pipelines) > 2:
            parts.append(f"{protocol} in the {len(pipelines)} other methods using {component}")
        else:
            parts.append(f"{protocol} in {_join(pipelines)}")
    return f"{component} ran {' but '.join(parts) if len(parts) == 2 else _join(parts)}"


def protocol_clause(data, methods: Iterable[str] | None = None) -> str:
    """The protocol sentence without its `Inference protocol: ` prefix and final full stop (see
    `protocol_sentence`)."""
    entries = component_runs(data, methods)
    table = _by_component(entries)
    asked_official = {entry.component for entry in entries if entry.asked == OFFICIAL}
    uniform = {name: next(iter(set(by.values()))) for name, by in table.items() if len(set(by.values())) == 1}
    mixed = {name: by for name, by in table.items() if name not in uniform}
    official = [name for name, protocol in uniform.items() if protocol == OFFICIAL]
    exact = [name for name, protocol in uniform.items() if protocol == EXACT]
    unknown = [f"{name} ran {protocol}" for name, protocol in uniform.items() if protocol not in (EXACT, OFFICIAL)]
    without = [name for name in exact if name in asked_official]       # asked official, has none
    every = "every other method" if mixed or unknown else "every method"
    clauses = []
    if official and not exact:
        clauses.append(f"{OFFICIAL} for {every} ({OFFICIAL_DESCRIPTION})")
    elif official and without == exact:
        clauses.append(f"{OFFICIAL} for {every} that has one ({OFFICIAL_DESCRIPTION}); {_join(exact)} "
                       f"{'has' if len(exact) == 1 else 'have'} none and ran {EXACT} ({EXACT_DESCRIPTION})")
    elif official:
        scripts = "its release script" if len(official) == 1 else "their release scripts"
        clauses.append(f"{OFFICIAL} for {_join(official)} ({scripts}, bit for bit); {EXACT} for the others "
                       f"({EXACT_DESCRIPTION})")
        if without:
            clauses.append(f"{_join(without)} {'was' if len(without) == 1 else 'were'} asked to run {OFFICIAL} but "
                           f"{'has' if len(without) == 1 else 'have'} none")
    elif exact or not (mixed or unknown):
        clauses.append(f"{EXACT} for {every} ({EXACT_DESCRIPTION})")
        if exact and without == exact:
            which = f"{exact[0]} has none" if len(exact) == 1 else "none of them has one"
            clauses.append(f"{OFFICIAL} was asked, but {which}")
        elif without:
            clauses.append(f"{_join(without)} {'was' if len(without) == 1 else 'were'} asked to run {OFFICIAL} but "
                           f"{'has' if len(without) == 1 else 'have'} none")
    clauses += [_mixed_clause(name, by) for name, by in mixed.items()]
    clauses += unknown
    return "; ".join(clauses)


def protocol_sentence(data, methods: Iterable[str] | None = None) -> str:
    """One sentence for captions: which inference protocol the report's methods (or `methods`) ran
    under, naming components, e.g.

    - `Inference protocol: exact for every method (each network on the whole image, its output rounded
      once to 8 bits).`
    - `Inference protocol: official for RCAN and SRFBN (their release scripts, bit for bit); exact for
      the others (each network on the whole image, its output rounded once to 8 bits).`
    - `Inference protocol: official for every method that has one (each as its release script runs
      it, bit for bit); DBPN, MGFF and CFANet have none and ran exact (...).`

    A component that ran under different protocols in different contributing runs is listed method by
    method (`...; RCAN ran official in RCAN+MGFF but exact in MGFF+RCAN.`)."""
    return f"{PREFIX}{protocol_clause(data, methods)}."


def summary_line(data) -> str:
    """`protocol: exact for every method (...)`: the line of `report`'s printed summary."""
    return f"protocol: {protocol_clause(data)}"
