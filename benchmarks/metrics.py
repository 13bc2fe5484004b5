"""Throughput of MEF-SSIM, SSIM and PSNR on 1-megapixel images (python benchmarks/metrics.py).

Inputs are seeded smooth uint8 RGB images, 1000x1000: two exposures of one scene and a fused
image. Prints the median over a few repeats of the time per call and the megapixels per second.
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import numpy as np
from scipy import ndimage

from cfanet.metrics import describe, mef_ms_ssim, psnr, ssim

SIZE = (1000, 1000)
REPEATS = 5


def _scene(seed: int = 0) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Two exposures, a fused image and a reference, uint8 RGB (H, W, 3)."""
    rng = np.random.default_rng(seed)
    radiance = ndimage.gaussian_filter(rng.standard_normal(SIZE + (3,)), (4, 4, 0))
    radiance = 0.5 + 0.5 * radiance / (3 * radiance.std())

    def expose(gain: float) -> np.ndarray:
        return np.clip(255 * radiance * gain, 0, 255).round().astype(np.uint8)

    under, over, reference = expose(0.4), expose(1.8), expose(1.0)
    fused = np.clip(reference + rng.normal(0, 3, reference.shape), 0, 255).round().astype(np.uint8)
    return [under, over], fused, reference


def _median_seconds(call, repeats: int = REPEATS) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    sources, fused, reference = _scene()
    megapixels = SIZE[0] * SIZE[1] / 1e6
    cases = [
        ("MEF-SSIM (2 sources, 3 scales)", lambda: mef_ms_ssim(sources, fused)),
        ("SSIM paper (RGB)", lambda: ssim(fused, reference, "paper")),
        ("SSIM sr (Y, crop 4)", lambda: ssim(fused, reference, "sr", scale=4)),
        ("PSNR paper (RGB)", lambda: psnr(fused, reference, "paper")),
        ("PSNR sr (Y, crop 4)", lambda: psnr(fused, reference, "sr", scale=4)),
    ]
    print(f"{SIZE[0]}x{SIZE[1]} uint8 RGB, median of {REPEATS}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, numpy {np.__version__}")
    print(f"{'metric':34s} {'ms/call':>9s} {'Mpx/s':>8s}")
    for name, call in cases:
        seconds = _median_seconds(call)
        print(f"{name:34s} {seconds * 1e3:9.1f} {megapixels / seconds:8.2f}")
    print(f"values: MEF-SSIM {mef_ms_ssim(sources, fused).score:.6f}, "
          f"SSIM {ssim(fused, reference):.6f}, PSNR {psnr(fused, reference):.4f} dB")
    for name in ("paper", "sr"):
        print(" ", describe(name))


if __name__ == "__main__":
    main()
