"""`cfanet-bench apply METHOD`: run one method on one input from the command line.

Methods are looked up by name (case-insensitive) in `APPLICABLE`, a table of import paths so that
a method's dependencies load only when it is used. Three kinds, as in DESIGN.md:

- `mef`: `fuse(over, under)` on a pair of same-size images (MGFF, Fast-SPD-MEF, MEF-Net, U2Fusion);
- `joint`: `fuse_upscale(over, under)` on an LR pair (CF-Net);
- `sr`: `upscale(lr)` on one image (DBPN, RCAN, SRFBN, SwinIR).

Deep methods need weights: `--weights FILE`, or the profile's `[profiles.P.weights]` entry
(`NAME` for MEF-Net/U2Fusion, `NAME.xS` with `--scale S` for scale-specific models).
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Applicable:
    kind: str          # "mef", "joint" or "sr"
    target: str        # "module:Class"
    needs_weights: bool


APPLICABLE = {
    "MGFF": Applicable("mef", "baselines.mef.mgff:MGFF", False),
    "Fast-SPD-MEF": Applicable("mef", "baselines.mef.fast_spd_mef:FastSpdMef", False),
    "MEF-Net": Applicable("mef", "baselines.mef.mefnet:MEFNet", True),
    "U2Fusion": Applicable("mef", "baselines.mef.u2fusion:U2Fusion", True),
    "CF-Net": Applicable("joint", "baselines.joint.cfnet:CFNet", True),
    "DBPN": Applicable("sr", "baselines.sr.dbpn:DBPN", True),
    "RCAN": Applicable("sr", "baselines.sr.rcan:RCAN", True),
    "SRFBN": Applicable("sr", "baselines.sr.srfbn:SRFBN", True),
    "SwinIR": Applicable("sr", "baselines.sr.swinir:SwinIR", True),
}


def lookup(name: str) -> tuple[str, Applicable]:
    """The canonical name and entry for `name`; an unknown name lists the available ones."""
    by_lower = {key.lower(): key for key in APPLICABLE}
    key = by_lower.get(name.lower())
    if key is None:
        raise KeyError(f"unknown method {name!r} for apply; available: {', '.join(APPLICABLE)}")
    return key, APPLICABLE[key]


def load_method(name: str, weights: str | Path | None = None, scale: int | None = None, device: str = "cpu"):
    """Instantiate method `name`; deep methods load `weights` strictly (the scale is read from them)."""
    key, entry = lookup(name)
    module_name, class_name = entry.target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not entry.needs_weights:
        return cls()
    if weights is None:
        raise KeyError(f"{key} needs weights: pass --weights FILE or configure them in benchmark.toml")
    kwargs = {"device": device}
    if entry.kind in ("sr", "joint"):
        kwargs["scale"] = scale
    return cls.from_checkpoint(weights, **kwargs)


def apply_method(name: str, output: str | Path, *, over: str | Path | None = None, under: str | Path | None = None,
                 image: str | Path | None = None, weights: str | Path | None = None, scale: int | None = None,
                 device: str = "cpu") -> dict:
    """Run method `name` on files, write the result to `output` atomically; returns a summary.

    Inputs are read and checked (readable, same size for a pair) before the model is loaded, so a
    bad file fails fast and names itself.
    """
    from cfanet.data.degrade import check_same_size
    from cfanet.images import read_image, write_image

    key, entry = lookup(name)
    if entry.kind == "sr":
        if image is None or over is not None or under is not None:
            raise KeyError(f"{key} is an SR model: give one --input image")
        inputs = {"input": read_image(image)}
    else:
        if over is None or under is None or image is not None:
            raise KeyError(f"{key} fuses a pair: give --over and --under")
        inputs = {"over": read_image(over), "under": read_image(under)}
        check_same_size({str(over): tuple(inputs["over"].shape[-2:]), str(under): tuple(inputs["under"].shape[-2:])},
                        "apply")
    method = load_method(key, weights, scale, device)
    start = time.perf_counter()
    if entry.kind == "sr":
        result = method.upscale(inputs["input"])
    elif entry.kind == "joint":
        result = method.fuse_upscale(inputs["over"], inputs["under"])
    else:
        result = method.fuse(inputs["over"], inputs["under"])
    seconds = time.perf_counter() - start
    written = write_image(output, result)
    summary = {"method": key, "kind": entry.kind, "output": str(written), "size": list(result.shape[-2:]),
               "seconds": round(seconds, 4)}
    summary.update({role: str(path) for role, path in (("over", over), ("under", under), ("input", image)) if path})
    if weights is not None:
        summary["weights"] = str(weights)
    return summary
