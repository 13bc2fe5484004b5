"""The 34 methods of the comparison, by name: 4 SR x 4 MEF composed both ways, plus 2 joint networks.

Names follow the order of the stages: `RCAN+MGFF` upscales each exposure with RCAN and then fuses
with MGFF (SR+MEF); `MGFF+RCAN` fuses the LR pair with MGFF and then upscales (MEF+SR).
This module is names only; the registry of runnable implementations builds on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SR_MODELS = ("DBPN", "RCAN", "SRFBN", "SwinIR")
MEF_METHODS = ("MGFF", "Fast-SPD-MEF", "MEF-Net", "U2Fusion")
JOINT_MODELS = ("CF-Net", "CFANet")
DEEP_METHODS = SR_MODELS + ("MEF-Net", "U2Fusion") + JOINT_MODELS


@dataclass(frozen=True)
class PipelineSpec:
    """One compared method: its display name, its kind and the stages it chains."""

    name: str
    order: Literal["SR+MEF", "MEF+SR", "joint"]
    sr: str | None = None
    mef: str | None = None
    joint: str | None = None


def all_pipelines() -> list[PipelineSpec]:
    """The 34 methods in Table 1's order: SR+MEF, then MEF+SR, then the joint networks."""
    specs = [PipelineSpec(f"{sr}+{mef}", "SR+MEF", sr=sr, mef=mef) for sr in SR_MODELS for mef in MEF_METHODS]
    specs += [PipelineSpec(f"{mef}+{sr}", "MEF+SR", sr=sr, mef=mef) for mef in MEF_METHODS for sr in SR_MODELS]
    specs += [PipelineSpec(name, "joint", joint=name) for name in JOINT_MODELS]
    return specs


def find_pipeline(name: str) -> PipelineSpec:
    """The pipeline called `name` (case-insensitive); an unknown name lists close matches."""
    by_name = {spec.name.lower(): spec for spec in all_pipelines()}
    if name.lower() in by_name:
        return by_name[name.lower()]
    import difflib

    close = difflib.get_close_matches(name, [s.name for s in all_pipelines()], n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `cfanet-bench list` shows all 34"
    raise KeyError(f"unknown method {name!r}{hint}")


def weight_keys(method: str, scales: tuple[int, ...]) -> list[str]:
    """Keys of `[profiles.*.weights]` a deep method reads: `NAME.xS` for scale-specific models."""
    if method in ("MEF-Net", "U2Fusion"):
        return [method]
    return [f"{method}.x{s}" for s in scales]
