"""Speed of MEF-SSIM, SSIM and PSNR per megapixel: the torch metrics against an earlier revision.

    python benchmarks/metrics.py                       # CPU, 1 thread and torch's default
    python benchmarks/metrics.py --threads 1 --device cuda --size 2000x1500

The earlier implementation (`--baseline-rev`, by default the last commit with the float64 NumPy
metrics) is read with `git show` into a throw-away package and timed in the same process,
interleaved with the current code, so both see the same machine load; on a shared machine only the
ratios are worth comparing between runs. Inputs are seeded smooth uint8 RGB images: two exposures
of one scene, a fused image and a reference. Every figure is the median over `--repeats` calls,
printed in seconds per megapixel (s/Mpx) of the scored image, with the ratio baseline / current.

The single-image API (`mef_ms_ssim`, `ssim`, `psnr` on uint8 numpy arrays, as the runner calls
it today) is timed at each `--threads` count (the baseline is NumPy/SciPy and single-threaded
whatever the setting). The batched API (`mef_ms_ssim_batch`, `ssim_batch`, `psnr_batch`) is timed on
a batch of `--batch` images, on the CPU and, with `--device cuda`, on the GPU (synchronised).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from cfanet.metrics.mef_ssim import mef_ms_ssim, mef_ms_ssim_batch
from cfanet.metrics.psnr_ssim import psnr, psnr_batch, ssim, ssim_batch

REPO = Path(__file__).resolve().parents[1]
# HEAD when the metrics moved to torch: the float64 NumPy/SciPy implementation.
BASELINE_REV = "f61413217e9a062e73a8a9361237f5f239a92d67"
_BASELINE_MODULES = ("_window", "_inputs", "mef_ssim", "psnr_ssim")  # in import order


def load_baseline(rev: str = BASELINE_REV) -> types.SimpleNamespace:
    """`cfanet/metrics/{mef_ssim,psnr_ssim}.py` as they were at `rev`, importable side by side.

    The files are read with `git show` and executed as a private package whose `cfanet.metrics.`
    imports point at each other (other `cfanet` modules are today's). Raises RuntimeError when git
    or the revision is unavailable.
    """
    package = f"_cfanet_metrics_at_{rev[:12]}"
    if package not in sys.modules:
        parent = types.ModuleType(package)
        parent.__path__ = []
        sys.modules[package] = parent
        for name in _BASELINE_MODULES:
            done = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:cfanet/metrics/{name}.py"],
                                  capture_output=True, text=True)
            if done.returncode:
                del sys.modules[package]
                raise RuntimeError(f"cannot read cfanet/metrics/{name}.py at {rev}: {done.stderr.strip()}")
            module = types.ModuleType(f"{package}.{name}")
            module.__file__ = f"<{rev[:12]}:cfanet/metrics/{name}.py>"
            sys.modules[module.__name__] = module
            exec(compile(done.stdout.replace("cfanet.metrics.", f"{package}."), module.__file__, "exec"),
                 module.__dict__)
    return types.SimpleNamespace(rev=rev, mef_ssim=sys.modules[f"{package}.mef_ssim"],
                                 psnr_ssim=sys.modules[f"{package}.psnr_ssim"])


def scene(size: tuple[int, int], seed: int = 0) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Two exposures, a fused image and a reference, uint8 RGB (H, W, 3)."""
    rng = np.random.default_rng(seed)
    radiance = ndimage.gaussian_filter(rng.standard_normal(size + (3,)), (4, 4, 0))
    radiance = 0.5 + 0.5 * radiance / (3 * radiance.std())

    def expose(gain: float) -> np.ndarray:
        return np.clip(255 * radiance * gain, 0, 255).round().astype(np.uint8)

    under, over, reference = expose(0.4), expose(1.8), expose(1.0)
    fused = np.clip(reference + rng.normal(0, 3, reference.shape), 0, 255).round().astype(np.uint8)
    return [under, over], fused, reference


def _median_seconds(calls: dict[str, callable], repeats: int, sync=lambda: None) -> dict[str, float]:
    """Median time of each call, the calls interleaved round by round (after one warm-up each)."""
    times = {name: [] for name in calls}
    for name, call in calls.items():
        call()
    sync()
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _tensor(array: np.ndarray, device: str) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> uint8 tensor (..., 3, H, W) on `device`."""
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(array, -1, -3))).to(device)


def _platform_lines(args) -> list[str]:
    lines = [f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}; "
             f"{platform.platform()}",
             f"CPU: {platform.processor() or platform.machine()}, os.cpu_count() = {os.cpu_count()}, "
             f"torch threads by default {torch.get_num_threads()} (interop {torch.get_num_interop_threads()})"]
    if args.device == "cuda":
        lines.append(f"CUDA: {torch.cuda.get_device_name()}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-rev", default=BASELINE_REV,
                        help="git revision of the implementation to compare with ('none' to skip); "
                             "default: %(default)s, the float64 NumPy metrics")
    parser.add_argument("--size", default="1000x1000", help="H x W of the images (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per case (default %(default)s)")
    parser.add_argument("--threads", default=f"1,{torch.get_num_threads()}",
                        help="comma-separated torch.set_num_threads values for the CPU runs (default %(default)s)")
    parser.add_argument("--batch", type=int, default=4, help="images per batched call (default %(default)s)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="also time the batched API on this device (default %(default)s)")
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.size.lower().split("x"))
    threads = sorted({int(t) for t in args.threads.split(",")})
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    baseline = None if args.baseline_rev == "none" else load_baseline(args.baseline_rev)
    default_threads = torch.get_num_threads()

    sources, fused, reference = scene((height, width))
    megapixels = height * width / 1e6
    for line in _platform_lines(args):
        print(line)
    print(f"{height}x{width} uint8 RGB ({megapixels:g} Mpx), median of {args.repeats}; baseline "
          f"{baseline.rev[:12] if baseline else '-'} (NumPy/SciPy float64), current: torch float64")

    single = {
        "MEF-SSIM (2 sources, 3 scales)": lambda m: m.mef_ssim.mef_ms_ssim(sources, fused).score,
        "SSIM paper (RGB)": lambda m: m.psnr_ssim.ssim(fused, reference, "paper"),
        "SSIM sr (Y, crop 4)": lambda m: m.psnr_ssim.ssim(fused, reference, "sr", scale=4),
        "PSNR paper (RGB)": lambda m: m.psnr_ssim.psnr(fused, reference, "paper"),
        "PSNR sr (Y, crop 4)": lambda m: m.psnr_ssim.psnr(fused, reference, "sr", scale=4),
    }
    current = types.SimpleNamespace(mef_ssim=sys.modules[mef_ms_ssim.__module__],
                                    psnr_ssim=sys.modules[psnr.__module__])
    print("\nsingle-image API on numpy uint8 (what the runner calls), CPU, s/Mpx:")
    print(f"{'metric':32s} {'threads':>7s} {'baseline':>9s} {'current':>9s} {'ratio':>6s} {'|difference|':>12s}")
    for count in threads:
        torch.set_num_threads(count)
        for name, call in single.items():
            calls = {"current": lambda call=call: call(current)}
            if baseline:
                calls["baseline"] = lambda call=call: call(baseline)
            seconds = _median_seconds(calls, args.repeats)
            new = seconds["current"] / megapixels
            if baseline:
                old = seconds["baseline"] / megapixels
                difference = abs(call(baseline) - call(current))
                print(f"{name:32s} {count:7d} {old:9.3f} {new:9.3f} {old / new:6.2f} {difference:12.1e}")
            else:
                print(f"{name:32s} {count:7d} {'-':>9s} {new:9.3f}")
    torch.set_num_threads(default_threads)

    devices = ["cpu"] + (["cuda"] if args.device == "cuda" else [])
    print(f"\nbatched API, {args.batch} images per call, s/Mpx (per image):")
    print(f"{'metric':32s} {'device':>7s} {'threads':>7s} {'s/Mpx':>9s}")
    for device in devices:
        batch_sources = _tensor(np.stack([np.stack(sources)] * args.batch), device)
        batch_fused = _tensor(np.stack([fused] * args.batch), device)
        batch_reference = _tensor(np.stack([reference] * args.batch), device)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        batched = {
            "MEF-SSIM (2 sources, 3 scales)": lambda: mef_ms_ssim_batch(batch_sources, batch_fused),
            "SSIM paper (RGB)": lambda: ssim_batch(batch_fused, batch_reference, "paper"),
            "SSIM sr (Y, crop 4)": lambda: ssim_batch(batch_fused, batch_reference, "sr", scale=4),
            "PSNR paper (RGB)": lambda: psnr_batch(batch_fused, batch_reference, "paper"),
            "PSNR sr (Y, crop 4)": lambda: psnr_batch(batch_fused, batch_reference, "sr", scale=4),
        }
        for count in threads if device == "cpu" else [default_threads]:
            torch.set_num_threads(count)
            seconds = _median_seconds(batched, args.repeats, sync)
            for name, value in seconds.items():
                label = str(count) if device == "cpu" else "-"
                print(f"{name:32s} {device:>7s} {label:>7s} {value / args.batch / megapixels:9.4f}")
        torch.set_num_threads(default_threads)
        if device == "cuda":
            cpu_scores = mef_ms_ssim_batch(batch_sources.cpu(), batch_fused.cpu())
            gap = float((mef_ms_ssim_batch(batch_sources, batch_fused).cpu() - cpu_scores).abs().max())
            print(f"MEF-SSIM |CUDA - CPU| = {gap:.1e}")
    print(f"\nvalues: MEF-SSIM {mef_ms_ssim(sources, fused).score:.6f}, SSIM {ssim(fused, reference):.6f}, "
          f"PSNR {psnr(fused, reference):.4f} dB")


if __name__ == "__main__":
    main()
