"""MGFF: Multi-scale Guided Filter Fusion of two exposures.

Bavirisetti, Xiao, Zhao, Dhuli, Liu, "Multi-scale Guided Image and Video Fusion: A Fast and
Efficient Approach", Circuits, Systems, and Signal Processing 38 (2019). Re-implemented from the
author's MATLAB `fuse_MGF_RGB` (as shipped with VIFB / used by MEFB), arithmetic included, so that
the uint8 results equal MEFB's published `*_MGFF` files bit for bit.

The algorithm, on doubles in [0, 255], each colour channel on its own (a channel of one exposure
only ever meets the same channel of the other):

1. Guided filter (He, Sun, Tang, TPAMI 2013) with radius r = 9 (a 19 x 19 window) and
   eps = 1000 on the [0, 255] scale. Box means are window sums over the window *clipped at the
   image border* divided by the number of in-image pixels (He's cumulative-sum `boxfilter`; no
   padding).
2. Four decomposition levels with cross-guidance: starting from A1 = X1, A2 = X2, each level takes
   A1' = GF(guide=A1, input=A2) and A2' = GF(guide=A2, input=A1), i.e. each new base layer is the
   *other* image filtered with the image itself as guide. Detail layers D = A - A'.
3. Saliency |D|; per-level weights w1 = |D1| / (|D1| + |D2|), w2 = |D2| / (|D1| + |D2|). Where
   both details are 0 this is 0/0 = NaN, and the NaN propagates to the output pixel.
4. F = (A1 + A2) / 2 at the coarsest level + sum over levels of (w1 D1 + w2 D2).
5. MATLAB `uint8(F)`: round half away from zero, saturate to [0, 255], NaN -> 0.

The result is exactly symmetric in the order of the two exposures.

`MgffConfig.mefb_stretch` adds the step MEFB's wrapper applied on top (not part of MGFF): a
global min-max stretch of the uint8 result over all channels, `im2uint8(mat2gray(u))`. It changes
only results that do not already span 0..255 (3 of MEFB's 47 lossless pairs). Off by default.

Boundary convention (`fuse`, `MGFF.fuse`): float32 RGB (N, 3, H, W) in [0, 1] in, quantised to
8 bits first (round half up, as `cfanet.images.quantize`), because the official code reads 8-bit
files; float32 (N, 3, H, W) out, the uint8 result divided by 255, which is what the official code
saves. `fuse_uint8` is the numpy core on uint8 (H, W, C) arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from baselines.mef.base import check_pair
from cfanet.methods import register_method
from cfanet.images import quantize

METHOD = "MGFF"


@dataclass(frozen=True)
class MgffConfig:
    """MGFF's parameters: the author's r = 9, eps = 10^3 (on [0, 255] data), 4 levels.

    `mefb_stretch` applies MEFB's extra global min-max stretch (see the module docstring); switch
    it on only to reproduce MEFB's files.
    """

    radius: int = 9
    eps: float = 1000.0
    levels: int = 4
    mefb_stretch: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.radius, bool) or not isinstance(self.radius, (int, np.integer)) or self.radius < 0:
            raise ValueError(f"{METHOD}: radius must be an integer >= 0, got {self.radius!r}")
        if not np.isfinite(self.eps) or self.eps <= 0:
            raise ValueError(f"{METHOD}: eps must be finite and > 0 (on the [0, 255] scale), got {self.eps!r}")
        if isinstance(self.levels, bool) or not isinstance(self.levels, (int, np.integer)) or self.levels < 1:
            raise ValueError(f"{METHOD}: levels must be an integer >= 1, got {self.levels!r}")


# ---------------------------------------------------------------------------------------------
# Guided filter


def _along(axis: int, start: int, stop: int) -> tuple:
    """Index selecting [start, stop) along a negative `axis` and everything elsewhere."""
    return (Ellipsis, slice(start, stop)) + (slice(None),) * (-axis - 1)


def _window_sum_1d(x: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Sum over [i - r, i + r] clipped to the array along a negative `axis`, from a cumulative sum.

    With c the cumulative sum (summed in order), element i is c[min(i + r, n - 1)] - c[i - r - 1],
    the second term left out when i - r - 1 < 0: He's `boxfilter` term for term (so the same
    doubles), generalised to n < 2r + 2.
    """
    n = x.shape[axis]
    cumulative = np.cumsum(x, axis=axis)
    out = np.empty_like(cumulative)
    inner = max(n - radius, 0)  # i < inner: the window ends inside the array, at i + r
    out[_along(axis, 0, inner)] = cumulative[_along(axis, radius, n)]
    out[_along(axis, inner, n)] = cumulative[_along(axis, n - 1, n)]
    if n > radius + 1:  # i > r: the window starts inside the array, at i - r
        out[_along(axis, radius + 1, n)] -= cumulative[_along(axis, 0, n - radius - 1)]
    return out


def box_sum(x: np.ndarray, radius: int) -> np.ndarray:
    """(2r+1)^2 window sums over the last two axes, window clipped at the border (zero outside).

    Vertical pass first, then horizontal, as He's `boxfilter.m`; float64 in and out.
    """
    return _window_sum_1d(_window_sum_1d(x, radius, axis=-2), radius, axis=-1)


def window_count(shape: tuple[int, int], radius: int) -> np.ndarray:
    """Number of in-image pixels in each clipped (2r+1)^2 window: He's `boxfilter(ones, r)`, exactly."""
    rows, cols = (np.minimum(np.arange(n) + radius, n - 1) - np.maximum(np.arange(n) - radius, 0) + 1.0
                  for n in shape)
    return np.outer(rows, cols)


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He's gray-guide guided filter of `source` steered by `guide`, plane by plane.

    Both float64 shaped (..., H, W); every leading index is an independent plane. Box means over
    the clipped (2r+1)^2 window. Equation numbers are He, Sun, Tang, TPAMI 2013.
    """
    count = window_count(guide.shape[-2:], radius)

    def mean(x: np.ndarray) -> np.ndarray:
        return box_sum(x, radius) / count

    mean_i = mean(guide)
    mean_p = mean(source)
    cov_ip = mean(guide * source) - mean_i * mean_p
    var_i = mean(guide * guide) - mean_i * mean_i
    a = cov_ip / (var_i + eps)  # Eqn. (5)
    b = mean_p - a * mean_i  # Eqn. (6)
    return mean(a) * guide + mean(b)  # Eqn. (8)


def cross_guided_filter(x1: np.ndarray, x2: np.ndarray, radius: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """MGFF's cross-guided pair `(guided_filter(x1, x2), guided_filter(x2, x1))`, the same doubles.

    The two filters share the box means of x1, x2 and x1 x2, so 9 window sums are computed
    instead of 12 (about 20% faster). Float64 planes (..., H, W).
    """
    count = window_count(x1.shape[-2:], radius)

    def mean(x: np.ndarray) -> np.ndarray:
        return box_sum(x, radius) / count

    mean1, mean2, mean12 = mean(x1), mean(x2), mean(x1 * x2)
    filtered = []
    for guide, mean_i, mean_p in ((x1, mean1, mean2), (x2, mean2, mean1)):
        var_i = mean(guide * guide) - mean_i * mean_i
        a = (mean12 - mean_i * mean_p) / (var_i + eps)  # He et al. Eqn. (5)
        b = mean_p - a * mean_i  # Eqn. (6)
        filtered.append(mean(a) * guide + mean(b))  # Eqn. (8)
    return filtered[0], filtered[1]


# ---------------------------------------------------------------------------------------------
# Fusion


def _fuse_plane(x1: np.ndarray, x2: np.ndarray, config: MgffConfig) -> np.ndarray:
    """MGFF of one channel: float64 (H, W) planes in [0, 255] -> unrounded fused plane."""
    base1, base2 = x1, x2
    fused_detail = None
    for _ in range(config.levels):
        # Cross-guidance: each new base layer is the other image filtered with this one as guide.
        next1, next2 = cross_guided_filter(base1, base2, config.radius, config.eps)
        detail1, detail2 = base1 - next1, base2 - next2
        saliency1, saliency2 = np.abs(detail1), np.abs(detail2)
        total = saliency1 + saliency2
        with np.errstate(invalid="ignore"):  # 0/0 -> NaN, kept on purpose (the author's code)
            level_detail = detail1 * (saliency1 / total) + detail2 * (saliency2 / total)
        fused_detail = level_detail if fused_detail is None else fused_detail + level_detail
        base1, base2 = next1, next2
    fused_base = 0.5 * (base1 + base2)
    return fused_base + fused_detail


def fuse_planes(x1: np.ndarray, x2: np.ndarray, config: MgffConfig = MgffConfig()) -> np.ndarray:
    """MGFF on float64 planes in [0, 255] shaped (..., H, W); returns the unrounded fused planes.

    Every leading index (channel, batch item) is fused on its own, as the author's code does
    channel by channel. The result holds NaN where both detail layers of some level are 0 at a
    pixel (the author's 0/0).
    """
    fused = np.empty(x1.shape)
    for index in np.ndindex(x1.shape[:-2]):  # one plane at a time: a smaller working set is faster
        fused[index] = _fuse_plane(x1[index], x2[index], config)
    return fused


def matlab_uint8(x: np.ndarray) -> np.ndarray:
    """MATLAB's `uint8(x)` for doubles: round half away from zero, saturate to [0, 255], NaN -> 0."""
    whole = np.trunc(x)
    fraction = x - whole  # exact in floating point
    with np.errstate(invalid="ignore"):
        rounded = whole + np.sign(x) * (np.abs(fraction) >= 0.5)
    return np.clip(np.nan_to_num(rounded, nan=0.0), 0, 255).astype(np.uint8)


def mefb_stretch(u: np.ndarray) -> np.ndarray:
    """MEFB's post-step `im2uint8(mat2gray(u))` on a uint8 image: global min-max stretch to 0..255.

    `mat2gray` computes delta = 1 / (max - min) and v = delta * u + (-min * delta) (via
    `imlincomb`), clipped to [0, 1]; `im2uint8` rounds 255 v half up. Writing it as
    (u - min) / (max - min) differs by one level at some pixels. A constant image is left as
    `mat2gray` leaves it: values clipped to [0, 1], so any nonzero constant becomes 255.
    """
    low, high = float(u.min()), float(u.max())
    values = u.astype(np.float64)
    if high != low:
        delta = 1.0 / (high - low)
        values = delta * values + (-low * delta)
    values = np.clip(values, 0.0, 1.0)
    return np.floor(255.0 * values + 0.5).astype(np.uint8)


def fuse_uint8(over_u8: np.ndarray, under_u8: np.ndarray, config: MgffConfig = MgffConfig()) -> np.ndarray:
    """Fuse two uint8 exposures (H, W, C) or (H, W) of equal shape; uint8 of the same shape.

    This is the author's `uint8(fuse_MGF_RGB(I1, I2, 9, 1e3))` (each channel independently; for
    (H, W) gray input it is the author's `fuse_MGF` followed by the same uint8 conversion), plus
    MEFB's stretch when `config.mefb_stretch`. The order of the two exposures does not matter.
    """
    for role, image in (("over", over_u8), ("under", under_u8)):
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
            kind = (f"{image.dtype} array shaped {image.shape}" if isinstance(image, np.ndarray)
                    else type(image).__name__)
            raise ValueError(f"{METHOD}: {role} must be a uint8 array shaped (H, W, C) or (H, W), got {kind}")
    if over_u8.shape != under_u8.shape:
        raise ValueError(f"{METHOD}: exposures differ in shape: over {over_u8.shape}, under {under_u8.shape}")
    if over_u8.size == 0:
        raise ValueError(f"{METHOD}: empty image, shape {over_u8.shape}")
    channels_first = over_u8.ndim == 3
    x1, x2 = (np.moveaxis(image, -1, 0) if channels_first else image for image in (over_u8, under_u8))
    out = matlab_uint8(fuse_planes(x1.astype(np.float64), x2.astype(np.float64), config))
    if config.mefb_stretch:
        out = mefb_stretch(out)
    return np.ascontiguousarray(np.moveaxis(out, 0, -1)) if channels_first else out


def fuse(over: torch.Tensor, under: torch.Tensor, config: MgffConfig = MgffConfig()) -> torch.Tensor:
    """Harness boundary: float32 RGB (N, 3, H, W) in [0, 1] -> fused float32 (N, 3, H, W) in [0, 1].

    The inputs are first quantised to 8 bits (round half up; NaN -> 0, out-of-range values
    clipped), as the official code reads 8-bit files. The output is the uint8 result / 255 (what
    the official code saves, read back), on the device of `over`.
    """
    check_pair(over, under, METHOD)
    if over.numel() == 0:
        raise ValueError(f"{METHOD}: empty input, shape {tuple(over.shape)}")
    x1, x2 = (quantize(image).astype(np.float64) for image in (over, under))
    out = matlab_uint8(fuse_planes(x1, x2, config))
    if config.mefb_stretch:  # per image: min and max over its own three channels
        out = np.stack([mefb_stretch(image) for image in out])
    return torch.from_numpy(out.astype(np.float32) / 255.0).to(over.device)


@register_method("mef", deep=False, paper_order=1)
class MGFF:
    """Registry entry: `MGFF(config).fuse(over, under)` with the boundary convention of `fuse`."""

    name = METHOD

    def __init__(self, config: MgffConfig = MgffConfig()):
        if not isinstance(config, MgffConfig):
            raise ValueError(f"{METHOD}: config must be an MgffConfig, got {type(config).__name__}")
        self.config = config

    def fuse(self, over: torch.Tensor, under: torch.Tensor) -> torch.Tensor:
        return fuse(over, under, self.config)

    def __repr__(self) -> str:
        return f"MGFF({self.config})"
