"""`cfanet-bench apply METHOD`: run one method on one pair of image files.

Methods are looked up by name (case-insensitive) in `APPLICABLE`, a table of import paths so
that a method's dependencies load only when it is used. Later issues add SR, deep MEF and joint
methods and the pipelines of the registry.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

# name -> "module:class"; the class takes no arguments and has .fuse(over, under)
APPLICABLE = {
    "MGFF": "baselines.mef.mgff:MGFF",
    "Fast-SPD-MEF": "baselines.mef.fast_spd_mef:FastSpdMef",
}


def resolve_method(name: str):
    """Instantiate the method called `name`; an unknown name lists the available ones."""
    by_lower = {key.lower(): key for key in APPLICABLE}
    key = by_lower.get(name.lower())
    if key is None:
        raise KeyError(f"unknown method {name!r} for apply; available: {', '.join(APPLICABLE)}")
    module_name, class_name = APPLICABLE[key].split(":")
    return getattr(importlib.import_module(module_name), class_name)()


def apply_fusion(name: str, over_path: str | Path, under_path: str | Path, output: str | Path) -> dict:
    """Fuse the pair of files with method `name`, write the result to `output` atomically.

    Returns a summary (method, files, size, seconds). Image errors name the file; exposures of
    different sizes are refused before any work.
    """
    from cfanet.data.degrade import check_same_size
    from cfanet.images import read_image, write_image

    method = resolve_method(name)
    over, under = read_image(over_path), read_image(under_path)
    check_same_size({str(over_path): tuple(over.shape[-2:]), str(under_path): tuple(under.shape[-2:])}, "apply")
    start = time.perf_counter()
    fused = method.fuse(over, under)
    seconds = time.perf_counter() - start
    written = write_image(output, fused)
    return {"method": method.name, "over": str(over_path), "under": str(under_path), "output": str(written),
            "size": list(fused.shape[-2:]), "seconds": round(seconds, 4)}
