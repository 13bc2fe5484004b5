"""`cfanet-bench apply METHOD`: run one method on one input from the command line.

Any registered method works (`pipelines.registry`: built-in, plugins, `benchmark.toml`), by name
(case-insensitive). What it takes follows its kind (`cfanet.methods`):

- `mef`: `fuse(over, under)` on a pair of same-size images;
- `joint`: `fuse_upscale(over, under)` on an LR pair;
- `sr`: `upscale(lr)` on one image.

Methods with weights need them: `--weights FILE`, or the profile's `[profiles.P.weights]` entry
(`NAME` for scale-free methods, `NAME.xS` with `--scale S` for scale-specific ones).
"""

from __future__ import annotations

import time
from pathlib import Path

from cfanet.methods import MethodSpec


def load_method(spec: MethodSpec, weights: str | Path | None = None, scale: int | None = None, device: str = "cpu",
                size: str | None = None, protocol: str = "exact"):
    """Instantiate `spec`'s method; one with weights loads them strictly (the scale is read from them;
    `size` names the configuration where the loader cannot read it from the weights). `protocol`
    "official" runs the method as its release script does (`cfanet.protocols`); a method without
    that protocol is a ValueError naming it."""
    if protocol not in spec.protocols:
        raise ValueError(f"{spec.name} has no {protocol!r} protocol (it has: {', '.join(spec.protocols)})")
    options = {"protocol": protocol} if spec.deep and protocol != "exact" else {}
    if not spec.deep:
        return spec.create(scale or 2)
    if weights is None:
        raise KeyError(f"{spec.name} needs weights: pass --weights FILE or configure them in benchmark.toml")
    if size is None and Path(weights).suffix in (".pt", ".pth") and Path(weights).is_file():
        from pipelines.model_files import checkpoint_metadata

        size = checkpoint_metadata(Path(weights)).get("size")  # our own files say their configuration
    return spec.load(weights, scale, size=size, device=device, **options)


def apply_method(spec: MethodSpec, output: str | Path, *, over: str | Path | None = None, under: str | Path | None = None,
                 image: str | Path | None = None, weights: str | Path | None = None, scale: int | None = None,
                 device: str = "cpu", size: str | None = None, protocol: str = "exact") -> dict:
    """Run method `spec` on files, write the result to `output` atomically; returns a summary.

    Inputs are read and checked (readable, same size for a pair) before the model is loaded, so a
    bad file fails fast and names itself.
    """
    from cfanet.data.degrade import check_same_size
    from cfanet.images import read_image, write_image

    key = spec.name
    if spec.kind == "sr":
        if image is None or over is not None or under is not None:
            raise KeyError(f"{key} is an SR model: give one --input image")
        inputs = {"input": read_image(image)}
    else:
        if over is None or under is None or image is not None:
            raise KeyError(f"{key} fuses a pair: give --over and --under")
        inputs = {"over": read_image(over), "under": read_image(under)}
        check_same_size({str(over): tuple(inputs["over"].shape[-2:]), str(under): tuple(inputs["under"].shape[-2:])},
                        "apply")
    method = load_method(spec, weights, scale, device, size, protocol)
    start = time.perf_counter()
    result = getattr(method, spec.call)(*inputs.values())
    seconds = time.perf_counter() - start
    written = write_image(output, result)
    summary = {"method": key, "kind": spec.kind, "protocol": protocol, "output": str(written),
               "size": list(result.shape[-2:]), "seconds": round(seconds, 4)}
    summary.update({role: str(path) for role, path in (("over", over), ("under", under), ("input", image)) if path})
    if weights is not None:
        summary["weights"] = str(weights)
    return summary
