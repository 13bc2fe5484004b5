"""Fast SPD-MEF: fast multi-scale structural patch decomposition for multi-exposure fusion.

H. Li, K. Ma, H. Yong, L. Zhang, "Fast Multi-Scale Structural Patch Decomposition for Multi-Exposure
Image Fusion", IEEE TIP 29, 2020 (official MATLAB: xiaohuiben/fmmef-TIP-2020, static-scene demo
`demo_multi_sta.m`; the MEFB benchmark calls the method FMMEF). Written from the specification in
reference/algorithms.md section 5; it reproduces MEFB's published FMMEF outputs bit for bit.

The method, as the official static-scene code computes it (K exposures X_k, all radii r = 4):

1. **Box sums** (`box_sum`): sums over (2r+1)^2 windows clipped at the image border, by cumulative
   sums (He's `boxfilter`); a box mean divides by the box sum of ones.
2. **Per-level weights** (`patch_statistics`, `structure_weights`, `base_weights`): per exposure the
   patch mean mu_k and signal strength c_k (patch standard deviation times sqrt(patch size)); the
   structure weight c_k^(p-1) / sum_j (c_j^p + eps) (p = 4), scaled by the strongest c; on the
   coarsest level also base weights |Laplacian(X_k)| * well-exposedness(X_k).
3. **Level outputs** (`level_detail`, `coarsest_level`): each level aggregates the weighted
   patch structures over all patches covering a pixel (a box mean of the weights: the "fast"
   approximation, no per-patch renormalisation). Colour is used only at the finest level; the next
   level's input is the sampled patch mean mu_k on the even rows and columns.
4. **Reconstruction** (`upsample`, `fuse_float`): from the coarsest result upwards, normalised box
   upsampling from the even grid plus each level's detail; the finest detail carries colour.

Levels: the finest (colour), `nlev` intermediate ones and the coarsest, with the official
nlev = floor(log(min(H, W)) / log(2)) - 5 evaluated in float64 exactly as MATLAB does. Where that
is <= 0 (min side < 64) the official demo crashes; here it is clamped to 0, so the coarsest level
takes the finest level's sampled means directly (a two-level pyramid), see `intermediate_levels`.
Box sums clip windows to any size, so tiny images (down to 1x1) also work; the official
`boxfilter.m` fails on any level with a side below 2r+1 = 9.

Conventions. `fuse_float` is the method on float64 [0, 1] data and returns the unclipped result
(roughly -0.5..1.5 on real pairs), as the official code leaves it. `fuse_uint8` saves it as MATLAB's
`im2uint8` does (clip to [0, 1], round half up), which is what MEFB stores. `fuse` is the harness
boundary: it first quantises the float32 [0, 1] inputs to 8 bits (the official code reads 8-bit files
with `im2double`) and returns the 8-bit result / 255 as float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from baselines.mef.base import check_pair
from cfanet.methods import register_method
from cfanet.images import quantize

METHOD = "Fast-SPD-MEF"


@dataclass(frozen=True)
class FastSpdMefConfig:
    """Parameters of Fast SPD-MEF; the defaults are the official static-scene demo's.

    Patches are (2r+1) x (2r+1) with r = `radius_fine` on the colour level, `radius_interm` on the
    intermediate levels and `radius_coarse` on the coarsest. `p` is the exponent of the structure
    weights, `eps` the official code's 1e-12 regulariser, `exposedness_slope` the 20 in the coarsest
    level's arctan well-exposedness (2/pi) atan(20 min(x, 1 - x)).
    """

    radius_fine: int = 4
    radius_interm: int = 4
    radius_coarse: int = 4
    p: float = 4.0
    eps: float = 1e-12
    exposedness_slope: float = 20.0

    def __post_init__(self):
        for name in ("radius_fine", "radius_interm", "radius_coarse"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{METHOD}: {name} must be a non-negative int, got {value!r}")
        if not self.p > 0:
            raise ValueError(f"{METHOD}: p must be positive, got {self.p!r}")
        if not self.eps > 0:
            raise ValueError(f"{METHOD}: eps must be positive, got {self.eps!r}")


OFFICIAL = FastSpdMefConfig()


# -- 1. box sums -----------------------------------------------------------------------------------


def _box_sum_axis(x: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Sum of `x` over [i - r, i + r] along `axis`, clipped to the array: prefix sums differenced.

    With S the running sum (S[j] = x[0] + ... + x[j-1], accumulated in order as MATLAB's `cumsum`),
    the clipped window sum is S[min(i + r + 1, n)] - S[max(i - r, 0)]. Both clips are done by
    extending S (S[0] = 0) with r more zeros in front and r copies of S[n] behind, so the result is
    one subtraction of two shifted slices.
    """
    x = np.moveaxis(x, axis, 0)
    n = x.shape[0]
    extended = np.empty((n + 2 * radius + 1,) + x.shape[1:])
    extended[:radius + 1] = 0.0
    np.cumsum(x, axis=0, out=extended[radius + 1:radius + 1 + n])
    extended[radius + 1 + n:] = extended[radius + n]
    return np.moveaxis(extended[2 * radius + 1:] - extended[:n], 0, axis)


def box_sum(x: np.ndarray, radius: int) -> np.ndarray:
    """Sum over the (2r+1) x (2r+1) window around each pixel, clipped at the borders; any size.

    Works on the first two axes of an array (H, W, ...), rows first, then columns. For images
    of at least 2r+1 pixels per side the arithmetic (and so every bit of the result) is that of He's
    cumulative-sum `boxfilter.m`, which the official code uses.
    """
    return _box_sum_axis(_box_sum_axis(x, radius, 0), radius, 1)


def box_count(height: int, width: int, radius: int) -> np.ndarray:
    """Number of pixels in each clipped window, (H, W): `box_sum(ones)`; divides a box sum into a mean."""
    return box_sum(np.ones((height, width)), radius)


# -- 2. per-level weights --------------------------------------------------------------------------


def patch_statistics(x: np.ndarray, radius: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Patch mean mu_k and signal strength c_k of every exposure; both (H, W, K).

    `x` is a colour level (H, W, 3, K) or a gray level (H, W, K). On a colour level the mean and
    variance pool the three channels (one scalar map per exposure) and the strength is
    std * sqrt(3 R^2) + eps; on a gray level it is std * sqrt(R^2) + eps, with R = 2r + 1.
    The operation order follows `weight_cal_detail.m`, so the maps equal the official ones bit for bit
    (checked under GNU Octave).
    """
    count = box_count(x.shape[0], x.shape[1], radius)[:, :, None]
    patch = 2 * radius + 1
    sums, squares = box_sum(x, radius), box_sum(x * x, radius)
    if x.ndim == 4:  # colour: (H, W, 3, K)
        mean = (sums[:, :, 0] / count + sums[:, :, 1] / count + sums[:, :, 2] / count) / 3
        variance = (squares[:, :, 0] / count + squares[:, :, 1] / count + squares[:, :, 2] / count
                    - mean * mean * 3) / 3
        scale = math.sqrt(3 * patch ** 2)
    else:
        mean = sums / count
        variance = squares / count - mean * mean
        scale = math.sqrt(patch ** 2)
    strength = np.sqrt(np.maximum(variance, 0.0)) * scale + eps
    return mean, strength


def structure_weights(strength: np.ndarray, p: float, eps: float) -> np.ndarray:
    """Detail weights WD_k = c_k^(p-1) / sum_j (c_j^p + eps) * max_j c_j, (H, W, K).

    The patch structure (x_k - mu_k) / c_k weighted by c_k^p / sum_j c_j^p and given the strongest
    strength max_j c_j: the 1/c_k is folded into the weight. numpy's `power` and libm's `pow` can
    differ in the last bit, so these weights match the official ones to a few ulps, not bitwise;
    that never reached an 8-bit output in our checks.
    """
    normaliser = np.sum(strength ** p + eps, axis=2, keepdims=True)
    return strength ** (p - 1) / normaliser * np.max(strength, axis=2, keepdims=True)


def laplacian_magnitude(x: np.ndarray) -> np.ndarray:
    """|4-neighbour Laplacian| ([0 1 0; 1 -4 1; 0 1 0], replicated borders) of each map in (H, W, K)."""
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
    centre = padded[1:-1, 1:-1]
    # Summed right, down, centre, up, left: the order of GNU Octave's imfilter (checked bit for bit);
    # MATLAB's order is not documented, and the 8-bit results match MEFB either way.
    return np.abs(padded[1:-1, 2:] + padded[2:, 1:-1] + -4.0 * centre + padded[:-2, 1:-1] + padded[1:-1, :-2])


def well_exposedness(x: np.ndarray, slope: float) -> np.ndarray:
    """(2/pi) atan(slope * min(x, 1 - x)): 0 at black and white, rising steeply toward mid-gray."""
    return (2 / math.pi) * np.arctan(slope * np.where(x <= 0.5, x, 1 - x))


def base_weights(x: np.ndarray, config: FastSpdMefConfig) -> np.ndarray:
    """Coarsest-level base weights |L(X_k)| E(X_k) + eps, normalised over the K exposures; (H, W, K)."""
    weights = laplacian_magnitude(x) * well_exposedness(x, config.exposedness_slope) + config.eps
    return weights / np.sum(weights, axis=2, keepdims=True)


# -- 3. level outputs ------------------------------------------------------------------------------


def _sum_exposures(terms: np.ndarray) -> np.ndarray:
    """Sum over the last axis in order k = 1..K, as MATLAB's `sum` adds."""
    total = terms[..., 0]
    for k in range(1, terms.shape[-1]):
        total = total + terms[..., k]
    return total


def _aggregated_terms(x, mean, detail_weights, radius):
    """Per exposure box_mean(WD_k) X_k - box_mean(mu_k WD_k), (H, W[, 3], K)."""
    count = box_count(x.shape[0], x.shape[1], radius)[:, :, None]
    weight_of_mean = box_sum(mean * detail_weights, radius) / count
    weight = box_sum(detail_weights, radius) / count
    if x.ndim == 4:  # colour: the same scalar weights for all channels
        return weight[:, :, None] * x - weight_of_mean[:, :, None]
    return weight * x - weight_of_mean


def level_detail(x: np.ndarray, radius: int, config: FastSpdMefConfig) -> tuple[np.ndarray, np.ndarray]:
    """One finest or intermediate level: (detail D (H, W[, 3]), patch means mu_k (H, W, K)).

    D = sum_k [box_mean(WD_k) X_k - box_mean(mu_k WD_k)]: at every pixel the average, over the
    patches covering it, of max_j c_j * sum_k w_k (x_k - mu_k) / c_k.
    """
    mean, strength = patch_statistics(x, radius, config.eps)
    detail_weights = structure_weights(strength, config.p, config.eps)
    return _sum_exposures(_aggregated_terms(x, mean, detail_weights, radius)), mean


def coarsest_level(x: np.ndarray, radius: int, config: FastSpdMefConfig) -> np.ndarray:
    """The coarsest level's fused result (H, W): its detail plus the base sum_k box_mean(mu_k WB_k)."""
    mean, strength = patch_statistics(x, radius, config.eps)
    detail_weights = structure_weights(strength, config.p, config.eps)
    count = box_count(x.shape[0], x.shape[1], radius)[:, :, None]
    base = box_sum(mean * base_weights(x, config), radius) / count
    return _sum_exposures(_aggregated_terms(x, mean, detail_weights, radius) + base)


def next_level_input(mean: np.ndarray) -> np.ndarray:
    """The next level's exposures: patch means on even rows and columns (0-based), ceil(H/2) x ceil(W/2)."""
    return mean[::2, ::2]


# -- 4. reconstruction -----------------------------------------------------------------------------


def upsample(coarse: np.ndarray, shape: tuple[int, int], radius: int) -> np.ndarray:
    """Normalised box upsampling: `coarse` on the even grid of a zero (H, W) map, box-summed, divided
    by the box sum of that grid's indicator."""
    grid = np.zeros(shape)
    grid[::2, ::2] = coarse
    indicator = np.zeros(shape)
    indicator[::2, ::2] = 1.0
    return box_sum(grid, radius) / box_sum(indicator, radius)


def intermediate_levels(height: int, width: int) -> int:
    """Number of intermediate levels: the official floor(log(min(H, W)) / log(2)) - 5, at least 0.

    Evaluated in float64 as MATLAB does (`math.log` is correctly rounded here). For every side below
    2^24 this equals floor(log2(min side)) exactly, powers of two included (64 -> 1, 128 -> 2,
    1024 -> 5); the one float quirk, log(2^29)/log(2) = 29.000000000000004, floors correctly too.
    Below 64 pixels the formula gives <= 0 and the official demo crashes; we clamp to 0.
    """
    return max(math.floor(math.log(min(height, width)) / math.log(2)) - 5, 0)


def _check_exposures(exposures: Sequence[np.ndarray]) -> np.ndarray:
    if isinstance(exposures, np.ndarray) or not isinstance(exposures, Sequence):
        raise ValueError(f"{METHOD}: exposures must be a list of (H, W, 3) arrays, got {type(exposures).__name__}")
    if len(exposures) < 2:
        raise ValueError(f"{METHOD}: needs at least 2 exposures, got {len(exposures)}")
    arrays = [np.asarray(e, dtype=np.float64) for e in exposures]
    for k, array in enumerate(arrays):
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"{METHOD}: exposure {k} must be shaped (H, W, 3), got {array.shape}")
        if array.shape != arrays[0].shape:
            raise ValueError(f"{METHOD}: exposures differ in shape: {arrays[0].shape} and {array.shape} (exposure {k})")
    if arrays[0].shape[0] == 0 or arrays[0].shape[1] == 0:
        raise ValueError(f"{METHOD}: exposures are empty, shape {arrays[0].shape}")
    return np.stack(arrays, axis=3)


def fuse_float(exposures: Sequence[np.ndarray], config: FastSpdMefConfig = OFFICIAL) -> np.ndarray:
    """Fuse K >= 2 static exposures, each float (H, W, 3) in [0, 1]; float64 (H, W, 3), unclipped.

    This is `demo_multi_sta.m` on `im2double` images. The result is not clipped (the official code
    displays it as is); `fuse_uint8` saves it.
    """
    x = _check_exposures(exposures)
    height, width = x.shape[:2]
    finest_detail, mean = level_detail(x, config.radius_fine, config)
    level_input = next_level_input(mean)
    details = []
    for _ in range(intermediate_levels(height, width)):
        detail, mean = level_detail(level_input, config.radius_interm, config)
        details.append(detail)
        level_input = next_level_input(mean)
    fused = coarsest_level(level_input, config.radius_coarse, config)
    for detail in reversed(details):
        fused = upsample(fused, detail.shape, config.radius_interm) + detail
    base = upsample(fused, (height, width), config.radius_fine)
    return base[:, :, None] + finest_detail


def fuse_uint8(exposures: Sequence[np.ndarray], config: FastSpdMefConfig = OFFICIAL) -> np.ndarray:
    """`fuse_float` saved as MATLAB's `im2uint8` does (clip to [0, 1], round half up): uint8 (H, W, 3)."""
    return quantize(fuse_float(exposures, config), bits=8)


def fuse(over: torch.Tensor, under: torch.Tensor, config: FastSpdMefConfig = OFFICIAL) -> torch.Tensor:
    """Harness boundary: float32 RGB (N, 3, H, W) in [0, 1] twice -> fused float32 (N, 3, H, W).

    Inputs are first quantised to 8 bits (round half up), since the official code reads 8-bit
    files; the output is the 8-bit image the official code (and MEFB) saves, divided by 255. The
    method is symmetric, so the order of `over` and `under` does not matter. Returned on the inputs'
    device.
    """
    check_pair(over, under, METHOD)
    if over.shape[2] == 0 or over.shape[3] == 0:
        raise ValueError(f"{METHOD}: exposures are empty, shape {tuple(over.shape)}")
    results = []
    for n in range(over.shape[0]):
        exposures = [quantize(image[n].permute(1, 2, 0)).astype(np.float64) / 255.0 for image in (over, under)]
        results.append(fuse_uint8(exposures, config).transpose(2, 0, 1).astype(np.float32) / 255.0)
    return torch.from_numpy(np.stack(results)).to(over.device)


@register_method("mef", deep=False, paper_order=2)
class FastSpdMef:
    """Fast SPD-MEF behind the MEF harness convention: `fuse(over, under)` on float32 RGB [0, 1]."""

    name: ClassVar[str] = METHOD

    def __init__(self, config: FastSpdMefConfig = OFFICIAL):
        self.config = config

    def fuse(self, over: torch.Tensor, under: torch.Tensor) -> torch.Tensor:
        """See the module-level `fuse`."""
        return fuse(over, under, self.config)

    def __repr__(self) -> str:
        return f"FastSpdMef({self.config})"
