"""Colour conversions that match MATLAB's `rgb2ycbcr` and `rgb2gray`.

Every function takes an array with the colour channels on axis -3, shaped (..., 3, H, W) in RGB
order, as a torch tensor or a numpy array, and returns the same kind of object. Float inputs are
on the [0, 1] scale (MATLAB's double convention); nothing is rounded unless the name says so.
"""

from __future__ import annotations

import numpy as np

# MATLAB rgb2ycbcr (ITU-R BT.601, studio swing): offsets on the 0..255 scale, matrix applied to
# RGB in [0, 1] and divided by 255, as in MATLAB's `rgb2ycbcr` for double input.
_YCBCR_OFFSET = (16.0, 128.0, 128.0)
_YCBCR_MATRIX = (
    (65.481, 128.553, 24.966),
    (-37.797, -74.203, 112.0),
    (112.0, -93.786, -18.214),
)

# MATLAB rgb2gray: the first row of the NTSC (YIQ) matrix as MATLAB stores it.
RGB2GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def _channels(x):
    return x[..., 0, :, :], x[..., 1, :, :], x[..., 2, :, :]


def _stack(planes, like):
    if isinstance(like, np.ndarray):
        return np.stack(planes, axis=-3)
    import torch

    return torch.stack(planes, dim=-3)


def _check_rgb(x) -> None:
    if x.ndim < 3 or x.shape[-3] != 3:
        raise ValueError(f"expected colour channels on axis -3 with size 3, got shape {tuple(x.shape)}")


def rgb2ycbcr(rgb):
    """RGB in [0, 1] -> YCbCr in [0, 1] exactly as MATLAB `rgb2ycbcr` on double input.

    Y lies in [16/255, 235/255] and Cb, Cr in [16/255, 240/255] for RGB in [0, 1]. Not rounded
    (the BasicSR `test_y_channel` convention).
    """
    _check_rgb(rgb)
    r, g, b = _channels(rgb)
    planes = [
        (off + m[0] * r + m[1] * g + m[2] * b) / 255.0 for off, m in zip(_YCBCR_OFFSET, _YCBCR_MATRIX)
    ]
    return _stack(planes, rgb)


def rgb2y(rgb):
    """The Y plane of `rgb2ycbcr`, shaped (..., 1, H, W), on the [0, 1] scale."""
    _check_rgb(rgb)
    r, g, b = _channels(rgb)
    m = _YCBCR_MATRIX[0]
    return _stack([(_YCBCR_OFFSET[0] + m[0] * r + m[1] * g + m[2] * b) / 255.0], rgb)


def ycbcr2rgb(ycbcr):
    """Inverse of `rgb2ycbcr` (MATLAB `ycbcr2rgb` on double input); not clipped."""
    _check_rgb(ycbcr)
    inv = np.linalg.inv(np.asarray(_YCBCR_MATRIX, dtype=np.float64))
    y, cb, cr = _channels(ycbcr)
    shifted = [y * 255.0 - _YCBCR_OFFSET[0], cb * 255.0 - _YCBCR_OFFSET[1], cr * 255.0 - _YCBCR_OFFSET[2]]
    planes = [float(row[0]) * shifted[0] + float(row[1]) * shifted[1] + float(row[2]) * shifted[2] for row in inv]
    return _stack(planes, ycbcr)


def rgb2gray(rgb):
    """RGB -> gray with MATLAB `rgb2gray` weights, unrounded; shape (..., H, W), same scale as input."""
    _check_rgb(rgb)
    r, g, b = _channels(rgb)
    wr, wg, wb = RGB2GRAY_WEIGHTS
    return wr * r + wg * g + wb * b


def rgb2gray_uint8(rgb_u8: np.ndarray) -> np.ndarray:
    """MATLAB `rgb2gray` on a uint8 image: weighted sum rounded half away from zero, saturated.

    Takes a uint8 numpy array (..., 3, H, W) and returns uint8 (..., H, W), as MATLAB keeps the
    uint8 class. This is the gray image the official MEF-SSIM code scores.
    """
    if rgb_u8.dtype != np.uint8:
        raise TypeError(f"rgb2gray_uint8 expects uint8 input, got {rgb_u8.dtype}")
    gray = rgb2gray(rgb_u8.astype(np.float64))
    return np.clip(np.floor(gray + 0.5), 0, 255).astype(np.uint8)
