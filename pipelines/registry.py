"""Registry of every method by name: its kind, where its implementation lives, which weights it
reads and whether they are found.

Implementations are named by import path and loaded only when a method is built, so listing the
registry costs nothing and one method's missing dependency never breaks another.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipelines.catalog import JOINT_MODELS, MEF_METHODS, SR_MODELS, weight_keys
from pipelines.config import Profile

Kind = Literal["sr", "mef", "joint"]


@dataclass(frozen=True)
class MethodEntry:
    """One method: `target` is "module:Class"; deep methods load weights and have a small config."""

    name: str
    kind: Kind
    target: str
    deep: bool
    trainable_here: bool = True   # False: training needs resources this machine cannot have
    note: str = ""

    def load_class(self):
        module_name, class_name = self.target.split(":")
        return getattr(importlib.import_module(module_name), class_name)


METHODS: dict[str, MethodEntry] = {entry.name: entry for entry in (
    MethodEntry("DBPN", "sr", "baselines.sr.dbpn:DBPN", True),
    MethodEntry("RCAN", "sr", "baselines.sr.rcan:RCAN", True),
    MethodEntry("SRFBN", "sr", "baselines.sr.srfbn:SRFBN", True),
    MethodEntry("SwinIR", "sr", "baselines.sr.swinir:SwinIR", True),
    MethodEntry("MGFF", "mef", "baselines.mef.mgff:MGFF", False),
    MethodEntry("Fast-SPD-MEF", "mef", "baselines.mef.fast_spd_mef:FastSpdMef", False),
    MethodEntry("MEF-Net", "mef", "baselines.mef.mefnet:MEFNet", True),
    MethodEntry("U2Fusion", "mef", "baselines.mef.u2fusion:U2Fusion", True, trainable_here=False,
                note="training needs pretrained VGG-16 features, which cannot be downloaded here"),
    MethodEntry("CF-Net", "joint", "baselines.joint.cfnet:CFNet", True),
    MethodEntry("CFANet", "joint", "cfanet.network:CFANet", True),
)}
assert tuple(n for n, e in METHODS.items() if e.kind == "sr") == SR_MODELS
assert tuple(n for n, e in METHODS.items() if e.kind == "mef") == MEF_METHODS
assert tuple(n for n, e in METHODS.items() if e.kind == "joint") == JOINT_MODELS


def method(name: str) -> MethodEntry:
    """The entry called `name` (case-insensitive)."""
    by_lower = {key.lower(): entry for key, entry in METHODS.items()}
    if name.lower() not in by_lower:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    return by_lower[name.lower()]


@dataclass(frozen=True)
class WeightsStatus:
    """Where a deep method's weights for one scale come from."""

    method: str
    key: str
    path: Path | None
    found: bool
    source: Literal["configured", "demo", "none"]


def weights_status(profile: Profile, name: str, scale: int) -> WeightsStatus | None:
    """Configured file (and whether it exists), else demo weights for a small-model profile; None
    for classical methods."""
    entry = method(name)
    if not entry.deep:
        return None
    key = weight_keys(entry.name, (scale,))[0]
    path = profile.weights.get(key)
    if path is not None:
        found = Path(path).is_file() or any(Path(path).parent.glob(Path(path).name + ".*"))
        return WeightsStatus(entry.name, key, Path(path), found, "configured")
    if profile.model_size == "small":
        return WeightsStatus(entry.name, key, None, True, "demo")
    return WeightsStatus(entry.name, key, None, False, "none")
