"""11x11 'valid' window statistics shared by SSIM and MEF-SSIM (algorithms.md §2.2, §3.2).

Both metrics use separable 11-tap windows and keep only the centres whose window lies inside the
image, so an (..., H, W) input gives (..., H-10, W-10) maps. Two 1-D passes replace the 2-D
convolution; no padding value ever reaches the kept output.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

WINDOW = 11
HALF = WINDOW // 2

# MATLAB fspecial('gaussian', 11, 1.5) == outer product of this (same as cv2.getGaussianKernel(11, 1.5)).
_x = np.arange(WINDOW, dtype=np.float64) - HALF
GAUSSIAN_TAPS = np.exp(-(_x**2) / (2.0 * 1.5**2))
GAUSSIAN_TAPS /= GAUSSIAN_TAPS.sum()
# Unnormalised box: window *sums*. On 8-bit data and its 2x2 means these are dyadic rationals of
# few bits, so the sums are exact in float64 (flat patches get exactly zero variance).
BOX_TAPS = np.ones(WINDOW, dtype=np.float64)
del _x


def valid_filter(stack: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Correlate the last two axes of a float64 array with `taps` x `taps`; keep valid centres.

    `stack` is (..., H, W) with H, W >= 11; returns (..., H-10, W-10) float64.
    """
    if stack.shape[-2] < WINDOW or stack.shape[-1] < WINDOW:
        raise ValueError(f"images must be at least {WINDOW}x{WINDOW} for 11x11 windows, got {stack.shape[-2:]}")
    rows = ndimage.correlate1d(stack, taps, axis=-2, mode="constant")[..., HALF:-HALF, :]
    return ndimage.correlate1d(rows, taps, axis=-1, mode="constant")[..., HALF:-HALF]
