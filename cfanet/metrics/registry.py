"""The metrics of the benchmark as one registry: a frozen descriptor per metric, in the paper's order.

Everything that scores or shows scores (the runner's scoring and its cache, the results store,
Table 1, the per-image page, the significance page, `cfanet-bench score`, the trainer's
validation) iterates over `METRICS` instead of naming metrics, so adding a metric is one entry here
(plus its module and its calibration test).

A result is stored under the key `"<name>|<convention>"`: a convention-dependent metric (PSNR,
SSIM) once per PSNR/SSIM convention of the profile (`cfanet.metrics.psnr_ssim.CONVENTIONS`), any
other metric once under `OFFICIAL`.

Importing this module imports no torch (and no metric code): each metric's function imports its
module when called, so the torch-free reports can read the descriptors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

__all__ = ["METRICS", "METRICS_BY_NAME", "OFFICIAL", "Metric", "References", "describe_metric", "get_metric",
           "metric_key", "metric_names", "select", "split_metric_key"]

OFFICIAL = "official"
"""The convention string of metrics that have one official definition (MEF-SSIM, Q^AB/F)."""

Needs = Literal["gt", "sources"]


@dataclass(frozen=True)
class References:
    """What an output is scored against: the HR ground truth `gt` and the HR over/under exposures.

    Any object with these three attributes works the same (a `cfanet.data.scene.Scene` does).
    """

    gt: Any = None
    gt_over: Any = None
    gt_under: Any = None


@dataclass(frozen=True)
class Metric:
    """One metric: how it is named and printed, what it needs, and how it is computed.

    `function(output, refs, convention, scale) -> float` scores `output` (RGB, any form the metric
    modules accept) against `refs` (gt / gt_over / gt_under attributes); `convention` and `scale`
    matter only when `convention_dependent`. `details`, when given, returns `(value, extras)` with
    extra JSON-able facts (e.g. MEF-SSIM's per-scale values) for `cfanet-bench score`.
    """

    name: str                      # result key and column name: "psnr"
    label: str                     # plain text: "PSNR", "Q^AB/F"
    label_html: str                # HTML (only <sup>/<sub> markup): "Q<sup>AB/F</sup>"
    label_tex: str                 # LaTeX: "$Q^{AB/F}$"
    decimals: int                  # digits printed in tables (ranking uses the printed values)
    higher_is_better: bool
    needs: Needs                   # "gt": the HR ground truth; "sources": the HR over/under exposures
    convention_dependent: bool     # scored once per PSNR/SSIM convention, else once under OFFICIAL
    in_table1: bool                # shown in Table 1 by default (the paper's three metrics)
    function: Callable[[Any, Any, str, int], float] = field(repr=False, compare=False)
    unit: str = ""                 # appended to printed values: " dB"
    description: str = ""          # one line on how it is computed (report pages, `score`)
    details: Callable[[Any, Any, str, int], tuple[float, dict]] | None = field(default=None, repr=False,
                                                                               compare=False)

    def available(self, refs) -> bool:
        """True when `refs` holds what this metric needs."""
        if self.needs == "gt":
            return getattr(refs, "gt", None) is not None
        return getattr(refs, "gt_over", None) is not None and getattr(refs, "gt_under", None) is not None

    def conventions(self, conventions: Iterable[str]) -> list[str]:
        """The conventions this metric is stored under, given the profile's PSNR/SSIM conventions."""
        return list(conventions) if self.convention_dependent else [OFFICIAL]

    def compute(self, output, refs, convention: str = "paper", scale: int = 1) -> float:
        """The score of `output` against `refs` (see `function`)."""
        return float(self.function(output, refs, convention if self.convention_dependent else OFFICIAL, scale))

    def compute_details(self, output, refs, convention: str = "paper", scale: int = 1) -> tuple[float, dict]:
        """`(score, extras)`: extras are metric-specific facts (empty for most metrics)."""
        convention = convention if self.convention_dependent else OFFICIAL
        if self.details is not None:
            value, extras = self.details(output, refs, convention, scale)
            return float(value), dict(extras)
        return float(self.function(output, refs, convention, scale)), {}

    def describe(self) -> dict:
        """The JSON-able descriptor (no function): what a run manifest stores and reports read."""
        return describe_metric(self)


DESCRIPTOR_FIELDS = ("name", "label", "label_html", "label_tex", "decimals", "higher_is_better", "needs",
                     "convention_dependent", "in_table1", "unit", "description")


def describe_metric(metric: Metric) -> dict:
    return {name: getattr(metric, name) for name in DESCRIPTOR_FIELDS}


# -- the metrics' functions (imports inside: see the module docstring) -------------------------------

def _psnr(output, refs, convention: str, scale: int) -> float:
    from cfanet.metrics.psnr_ssim import psnr

    return psnr(output, refs.gt, convention=convention, scale=scale)


def _ssim(output, refs, convention: str, scale: int) -> float:
    from cfanet.metrics.psnr_ssim import ssim

    return ssim(output, refs.gt, convention=convention, scale=scale)


def _mef_ssim_details(output, refs, convention: str, scale: int) -> tuple[float, dict]:
    from cfanet.metrics.mef_ssim import mef_ms_ssim

    result = mef_ms_ssim([refs.gt_over, refs.gt_under], output)
    return result.score, {"per_scale": list(result.per_scale)}


def _mef_ssim(output, refs, convention: str, scale: int) -> float:
    return _mef_ssim_details(output, refs, convention, scale)[0]


def _qabf(output, refs, convention: str, scale: int) -> float:
    from cfanet.metrics.qabf import qabf

    return qabf([refs.gt_over, refs.gt_under], output)


_CONVENTIONS_NOTE = "convention-dependent (paper: RGB, no crop; sr: Y channel, scale px cropped)"

METRICS: tuple[Metric, ...] = (
    Metric("psnr", "PSNR", "PSNR", "PSNR", 2, True, "gt", True, True, _psnr, unit=" dB",
           description=f"PSNR against the HR ground truth, 8-bit, data range 255; {_CONVENTIONS_NOTE}"),
    Metric("ssim", "SSIM", "SSIM", "SSIM", 4, True, "gt", True, True, _ssim,
           description=f"SSIM (11x11 Gaussian, sigma 1.5, valid windows) against the HR ground truth; "
                       f"{_CONVENTIONS_NOTE}"),
    Metric("mef_ssim", "MEF-SSIM", "MEF-SSIM", "MEF-SSIM", 4, True, "sources", False, True, _mef_ssim,
           description="official MATLAB mef_ms_ssim.m (3 scales, rgb2gray on uint8) with the HR over- and "
                       "under-exposures as the reference sequence",
           details=_mef_ssim_details),
    Metric("qabf", "Q^AB/F", "Q<sup>AB/F</sup>", "$Q^{AB/F}$", 4, True, "sources", False, False, _qabf,
           description="Q^AB/F (Xydeas and Petrovic), gradient-based edge preservation as MEFB's metricsQabf.m "
                       "computes it (per RGB channel, mean), with the HR over- and under-exposures as sources A, B"),
)

METRICS_BY_NAME = MappingProxyType({metric.name: metric for metric in METRICS})


def metric_names() -> tuple[str, ...]:
    """The registered metric names, in the paper's order."""
    return tuple(metric.name for metric in METRICS)


def get_metric(name: str) -> Metric:
    """The metric called `name`; an unknown name lists the registered ones."""
    try:
        return METRICS_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; registered: {', '.join(metric_names())}") from None


def select(names: Sequence[str] | None = None) -> tuple[Metric, ...]:
    """The metrics called `names` in registry order (all when None); an unknown name raises KeyError."""
    if names is None:
        return METRICS
    for name in names:
        get_metric(name)
    return tuple(metric for metric in METRICS if metric.name in set(names))


def metric_key(name: str, convention: str) -> str:
    """`"psnr|paper"`: how a score is keyed in the metric cache and by the runner."""
    return f"{name}|{convention}"


def split_metric_key(key: str) -> tuple[str, str]:
    name, _, convention = key.partition("|")
    return name, convention
