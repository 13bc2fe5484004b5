"""The metrics a report shows, as the runs described them, without torch.

A run's manifest holds `metrics`: one descriptor per metric it scored (`pipelines.scoring.
describe_metrics`: name, label, label_html, label_tex, decimals, higher_is_better, needs,
convention_dependent, in_table1, unit, description). A report uses those of its contributing runs
(the latest run's first). A metric with results but no descriptor (a database written before
manifests recorded them) is described by `cfanet.metrics.registry` when it knows the name (that
module imports no torch), else generically (4 decimals, higher is better, not in Table 1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

OFFICIAL = "official"


@dataclass(frozen=True)
class MetricInfo:
    """How a report names, prints and ranks one metric (a descriptor without its function)."""

    name: str
    label: str
    label_html: str
    label_tex: str
    decimals: int
    higher_is_better: bool
    needs: str
    convention_dependent: bool
    in_table1: bool
    unit: str = ""
    description: str = ""

    def format(self, value, *, unit: bool = True) -> str:
        """`21.24 dB`, `0.8140`; `inf dB` for identical images; an en dash for a missing value."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "\u2013"
        suffix = self.unit if unit else ""
        if math.isinf(value):
            return f"inf{suffix}" if value > 0 else f"-inf{suffix}"
        return f"{value:.{self.decimals}f}{suffix}"

    def column(self, convention: str) -> str:
        """The per-image column of this metric: `psnr_paper`, `mef_ssim`."""
        return f"{self.name}_{convention}" if self.convention_dependent else self.name

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def _from_descriptor(entry) -> MetricInfo | None:
    """A MetricInfo from a manifest's descriptor, or None when it is not one (a damaged manifest)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
        return None
    name = entry["name"]

    def text(key: str, default: str) -> str:
        value = entry.get(key)
        return value if isinstance(value, str) else default

    decimals = entry.get("decimals")
    if not isinstance(decimals, int) or isinstance(decimals, bool) or not 0 <= decimals <= 12:
        decimals = 4
    label = text("label", name)
    return MetricInfo(
        name=name, label=label, label_html=text("label_html", label), label_tex=text("label_tex", label),
        decimals=decimals, higher_is_better=entry.get("higher_is_better") is not False,
        needs=text("needs", ""), convention_dependent=entry.get("convention_dependent") is True,
        in_table1=entry.get("in_table1") is True, unit=text("unit", ""), description=text("description", ""))


def _registered(name: str) -> MetricInfo | None:
    """The project's own descriptor of `name` (`cfanet.metrics.registry`, torch-free), if any."""
    try:
        from cfanet.metrics.registry import METRICS_BY_NAME
    except ImportError:  # a reports-only installation
        return None
    metric = METRICS_BY_NAME.get(name)
    return _from_descriptor(metric.describe()) if metric is not None else None


def _generic(name: str, conventions: set[str]) -> MetricInfo:
    return MetricInfo(name=name, label=name, label_html=name, label_tex=name, decimals=4, higher_is_better=True,
                      needs="", convention_dependent=bool(conventions - {OFFICIAL}), in_table1=False)


def collect_metrics(manifests: Iterable[dict], result_metrics: dict[str, set[str]]) -> list[MetricInfo]:
    """The metrics of a report, in order: those described by `manifests` (latest first; the first
    description of a name wins), then those with results only (`result_metrics`: name -> the
    conventions it was stored under), registered ones in registry order, then the others by name."""
    found: dict[str, MetricInfo] = {}
    for manifest in manifests:
        described = manifest.get("metrics") if isinstance(manifest, dict) else None
        if not isinstance(described, list):
            continue
        for entry in described:
            info = _from_descriptor(entry)
            if info is not None and info.name not in found:
                found[info.name] = info
    rest = [name for name in result_metrics if name not in found]
    try:
        from cfanet.metrics.registry import metric_names
        registry_order = {name: i for i, name in enumerate(metric_names())}
    except ImportError:
        registry_order = {}
    rest.sort(key=lambda name: (registry_order.get(name, len(registry_order)), name))
    for name in rest:
        found[name] = _registered(name) or _generic(name, result_metrics[name])
    return list(found.values())
