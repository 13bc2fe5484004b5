"""The run manifest: what a reader needs to trust and cite a run (environment, configuration,
weights and their provenance, the compared methods, the metrics), stored with the run."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path

import torch

from pipelines.cache import canonical_json
from pipelines.catalog import Grid, PipelineSpec

PACKAGES = ("cfanet-bench", "torch", "numpy", "scipy", "opencv-python-headless", "scikit-image")


def environment(device: torch.device) -> dict:
    """Python, platform, package versions, the git commit of this checkout and the device."""
    packages = {}
    for dist in PACKAGES:
        try:
            packages[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            packages[dist] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"python": sys.version.split()[0], "platform": platform.platform(), "packages": packages,
            "git_commit": commit, "device": str(device),
            "device_name": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor()}


def profile_identity(config, profile) -> dict:
    """The profile, its configuration's digest and its dataset (kind, root, split, HR size): what the
    reports need to say what the numbers are of (e.g. whether they can be compared with the paper's)."""
    data = profile.dataset
    dataset = {"kind": data.kind, "root": str(data.root) if data.root else None,
               "split": data.split, "split_file": str(data.split_file) if data.split_file else None}
    if data.kind == "sice":
        dataset.update(hr_long_side=data.hr_long_side, parts=list(data.parts) if data.parts else None)
    return {"profile": profile.name, "config_source": config.source,
            "config_sha256": hashlib.sha256(canonical_json(profile.__dict__).encode()).hexdigest(),
            "dataset": dataset}


def weights_record(weights: dict, instances: dict) -> dict:
    """Each method's weights (path, SHA-256, source, configuration, training details), which methods
    ran with demo weights, and each model's parameter count."""
    return {
        "weights": {f"{name}.x{scale}": (None if w is None else {"path": str(w.path), "sha256": w.sha256,
                                                                  "source": w.source, "size": w.size,
                                                                  "details": w.details})
                    for (name, scale), w in weights.items()},
        "demo_weights": sorted({name for (name, _), w in weights.items() if w and w.source == "demo"}),
        "parameters": {f"{name}.x{scale}": int(getattr(instance, "num_parameters", 0) or 0)
                       for (name, scale), instance in instances.items()},
    }


def grid_record(grid: Grid, run: list[PipelineSpec], table, runtime=None) -> dict:
    """The compared methods for the reports: the grid, then any other pipeline the run computed, in
    table order; each component's kind, source and the inference protocol it ran under (`runtime`'s
    choice where the method has that protocol, else "exact"); the proposed method (the statistics'
    reference) when it is among them."""
    pipelines = grid.pipelines()
    names = {p.name for p in pipelines}
    pipelines += [p for p in run if p.name not in names]
    components = {name: table.specs[name] for p in pipelines for name in p.components}
    reference = next((p.name for p in pipelines if p.joint and components[p.joint].proposed), None)
    asked = {name: runtime.protocol_of(name) if runtime else "exact" for name in components}
    return {"pipelines": [p.describe() for p in pipelines],
            "components": {name: {"kind": spec.kind, "source": spec.source, "learned": spec.deep,
                                  "protocol": spec.protocol_for(asked[name]), "protocol_asked": asked[name]}
                           for name, spec in components.items()},
            "reference": reference}
