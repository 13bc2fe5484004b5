"""PSNR and SSIM under a named, printed convention (algorithms.md §3).

A paper's numbers depend on colour space, border crop and SSIM variant, and CF-Net never said
which it used (§3.1), so every score here is computed under an explicit `Convention`:

- `paper`: RGB, no crop. PSNR from one MSE over the three channels of the 8-bit images; SSIM is the
  mean over R, G, B of the 11x11 Gaussian (sigma 1.5) SSIM. This reproduces the PSNR/SSIM logged by
  published SICE methods (the §3.1b calibration) and is CF-Net's own validation PSNR.
- `sr`: BasicSR's SR convention: crop `scale` pixels from every side, then score the Y channel of
  MATLAB `rgb2ycbcr` (BT.601, 16..235, unrounded) with the same formulas.

Both use data range 255, 'valid' SSIM windows (no padding), C1 = (0.01*255)^2, C2 = (0.03*255)^2,
and float64 arithmetic. Inputs are scored as 8-bit images: float input in [0, 1] is first
quantised exactly as an 8-bit save would (clip, round half up), because the protocol scores the
saved PNGs. Accepted forms: see `cfanet.metrics._inputs.ACCEPTED_RGB`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np

from cfanet.color import rgb2y
from cfanet.metrics._inputs import as_uint8_rgb
from cfanet.metrics._window import GAUSSIAN_TAPS, WINDOW, valid_filter

__all__ = ["CONVENTIONS", "Convention", "describe", "get_convention", "psnr", "ssim"]

DATA_RANGE = 255.0
C1 = (0.01 * DATA_RANGE) ** 2
C2 = (0.03 * DATA_RANGE) ** 2

Reduction = Literal["mean", "none"]


@dataclass(frozen=True)
class Convention:
    """How PSNR/SSIM are computed: which planes are compared and what border is dropped.

    `crop_border` is a pixel count, or "scale" for the super-resolution factor given per call.
    The crop is applied to every side before any colour conversion.
    """

    name: str
    y_channel: bool
    crop_border: int | Literal["scale"]

    def __post_init__(self) -> None:
        if self.crop_border != "scale" and not (isinstance(self.crop_border, int) and self.crop_border >= 0):
            raise ValueError(f"crop_border must be a non-negative int or 'scale', got {self.crop_border!r}")

    def crop_for(self, scale: int) -> int:
        """Pixels removed from each side for a given super-resolution `scale` (>= 1)."""
        if not (isinstance(scale, (int, np.integer)) and scale >= 1):
            raise ValueError(f"scale must be a positive integer, got {scale!r}")
        return int(scale) if self.crop_border == "scale" else self.crop_border

    def describe(self) -> str:
        """One line to print next to results, naming everything that can change a number."""
        planes = (
            "Y of MATLAB rgb2ycbcr (BT.601, 16-235, unrounded)"
            if self.y_channel
            else "RGB (PSNR: one MSE over the 3 channels; SSIM: mean over the 3 channels)"
        )
        crop = "crop = scale px per side" if self.crop_border == "scale" else f"crop = {self.crop_border} px per side"
        return (
            f"{self.name}: 8-bit images, {planes}; {crop}; PSNR = 10 log10(255^2/MSE); "
            f"SSIM 11x11 Gaussian sigma 1.5, valid windows, C1=(0.01*255)^2, C2=(0.03*255)^2"
        )


CONVENTIONS = MappingProxyType(
    {
        "paper": Convention(name="paper", y_channel=False, crop_border=0),
        "sr": Convention(name="sr", y_channel=True, crop_border="scale"),
    }
)


def get_convention(convention: str | Convention) -> Convention:
    """Look a convention up by name (a `Convention` passes through); ValueError lists valid names."""
    if isinstance(convention, Convention):
        return convention
    try:
        return CONVENTIONS[convention]
    except (KeyError, TypeError):
        raise ValueError(f"unknown PSNR/SSIM convention {convention!r}; valid: {', '.join(CONVENTIONS)}") from None


def describe(convention: str | Convention = "paper") -> str:
    """The printable description of a convention (see `Convention.describe`)."""
    return get_convention(convention).describe()


def _planes(img, ref, convention: Convention, scale: int, min_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 (N, C, h, w) on 0..255, cropped and colour-converted; C is 3 or 1.

    Raises ValueError when the shapes differ or the crop leaves a side shorter than `min_side`.
    """
    a, b = as_uint8_rgb(img), as_uint8_rgb(ref)
    if a.shape != b.shape:
        raise ValueError(f"image shape {a.shape} does not match reference shape {b.shape} (as (N, 3, H, W))")
    crop = convention.crop_for(scale)
    height, width = a.shape[-2:]
    if min(height, width) - 2 * crop < min_side:
        raise ValueError(f"{height}x{width} images leave less than {min_side} px after a {crop} px crop")
    if crop:
        a, b = a[..., crop:-crop, crop:-crop], b[..., crop:-crop, crop:-crop]
    a, b = a.astype(np.float64), b.astype(np.float64)
    if convention.y_channel:
        a, b = rgb2y(a / 255.0) * 255.0, rgb2y(b / 255.0) * 255.0
    return a, b


def _reduce(values: np.ndarray, reduction: Reduction) -> float | np.ndarray:
    if reduction == "mean":
        return float(values.mean())
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def psnr(img, ref, convention: str | Convention = "paper", scale: int = 1, reduction: Reduction = "mean"):
    """PSNR in dB of `img` against `ref` (same shape) under `convention`; inf where they are equal.

    Images: (3, H, W)/(N, 3, H, W) float in [0, 1] (quantised to 8 bits first) or uint8
    (H, W, 3)/(N, H, W, 3). `scale` only matters for conventions that crop by it. A batch gives
    the mean of the per-image PSNRs (`reduction="mean"`, a float) or them all (`"none"`, shape (N,)).
    """
    a, b = _planes(img, ref, get_convention(convention), scale, min_side=1)
    mse = ((a - b) ** 2).mean(axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(DATA_RANGE**2 / mse)
    return _reduce(values, reduction)


def _ssim_maps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM maps (..., h-10, w-10) of two float64 (..., h, w) arrays on 0..255 (BasicSR `_ssim`)."""
    moments = valid_filter(np.stack([a, b, a * a, b * b, a * b]), GAUSSIAN_TAPS)
    mu_a, mu_b, e_aa, e_bb, e_ab = moments
    var_a, var_b, cov = e_aa - mu_a * mu_a, e_bb - mu_b * mu_b, e_ab - mu_a * mu_b
    return ((2 * mu_a * mu_b + C1) * (2 * cov + C2)) / ((mu_a * mu_a + mu_b * mu_b + C1) * (var_a + var_b + C2))


def ssim(img, ref, convention: str | Convention = "paper", scale: int = 1, reduction: Reduction = "mean"):
    """SSIM of `img` against `ref` under `convention`; 1 where they are equal.

    Per plane, the mean of the valid-window SSIM map; over R, G, B the mean of the three planes.
    Inputs, `scale` and `reduction` as in `psnr`.
    """
    a, b = _planes(img, ref, get_convention(convention), scale, min_side=WINDOW)
    values = _ssim_maps(a, b).mean(axis=(1, 2, 3))  # equal-sized maps: mean of per-channel means
    return _reduce(values, reduction)
