"""The 11x11 window shared by SSIM and MEF-SSIM (algorithms.md §2.2, §3.2).

Both metrics use separable 11-tap windows and keep only the centres whose window lies inside the
image, so an (..., H, W) input gives (..., H-10, W-10) maps. The filters themselves are in
`_torch_window` (torch, imported only when a metric is computed); this module holds the constants
and imports numpy only.
"""

from __future__ import annotations

import numpy as np

WINDOW = 11
HALF = WINDOW // 2

# MATLAB fspecial('gaussian', 11, 1.5) == outer product of this (same as cv2.getGaussianKernel(11, 1.5)).
_x = np.arange(WINDOW, dtype=np.float64) - HALF
GAUSSIAN_TAPS = np.exp(-(_x**2) / (2.0 * 1.5**2))
GAUSSIAN_TAPS /= GAUSSIAN_TAPS.sum()
del _x
