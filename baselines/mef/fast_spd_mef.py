"""Fast SPD-MEF: fast multi-scale structural patch decomposition for multi-exposure fusion.

H. Li, K. Ma, H. Yong, L. Zhang, "Fast Multi-Scale Structural Patch Decomposition for Multi-Exposure
Image Fusion", IEEE TIP 29, 2020 (official MATLAB: xiaohuiben/fmmef-TIP-2020, static-scene demo
`demo_multi_sta.m`; the MEFB benchmark calls the method FMMEF). Written from the specification in
reference/algorithms.md section 5; it reproduces MEFB's published FMMEF outputs bit for bit.

The method, as the official static-scene code computes it (K exposures X_k, all radii r = 4):

1. **Box sums** (`box_sum_hw`): sums over (2r+1)^2 windows clipped at the image border, by cumulative
   sums (He's `boxfilter`): rows first, then columns; a box mean divides by the box sum of ones.
2. **Per-level weights** (`patch_statistics`, `structure_weights`, `base_weights`): per exposure the
   patch mean mu_k and signal strength c_k (patch standard deviation times sqrt(patch size)); the
   structure weight c_k^(p-1) / sum_j (c_j^p + eps) (p = 4), scaled by the strongest c; on the
   coarsest level also base weights |Laplacian(X_k)| * well-exposedness(X_k).
3. **Level outputs** (`_level`): each level aggregates the weighted patch structures over all patches
   covering a pixel (a box mean of the weights: the "fast" approximation, no per-patch
   renormalisation). Colour is used only at the finest level; the next level's input is the sampled
   patch mean mu_k on the even rows and columns.
4. **Reconstruction** (`_upsample_add`, `fuse_tensor`): from the coarsest result upwards, normalised
   box upsampling from the even grid plus each level's detail; the finest detail carries colour.

Levels: the finest (colour), `nlev` intermediate ones and the coarsest, with the official
nlev = floor(log(min(H, W)) / log(2)) - 5 evaluated in float64 exactly as MATLAB does. Where that
is <= 0 (min side < 64) the official demo crashes; here it is clamped to 0, so the coarsest level
takes the finest level's sampled means directly (a two-level pyramid), see `intermediate_levels`.
Box sums clip windows to any size, so tiny images (down to 1x1) also work; the official
`boxfilter.m` fails on any level with a side below 2r+1 = 9.

Implementation: torch, float64 throughout (see below), on the input's device, batched over N pairs of
equal size. The 8-bit outputs equal MEFB's only if the roundings are MATLAB's, so:

- every sum is accumulated in MATLAB's order: running sums row after row, then column after column,
  and exposures and channels added left to right (never a tree or a parallel scan). On CPU the running
  sums are torch's `cumsum` (a sequential loop); CUDA's `cumsum` is a parallel scan, so there they are
  loops of element-wise additions, one row or column at a time (`loops`);
- only correctly rounded operations: +, -, *, / and sqrt. torch's CPU sqrt goes through MKL and is
  not correctly rounded, so on CPU sqrt is numpy's; on CUDA a division by a host scalar becomes a
  multiplication by its reciprocal, so constants are divided as device tensors;
- integer powers c^p (p = 4, 3) are correctly rounded (double-double products, `integer_powers`), so
  they depend on no libm: glibc's `pow`, which the earlier NumPy code used, is one ulp off on ~0.1%
  of values (the one source of float64 differences from that code; no 8-bit value changed);
- the arctangent of the coarsest level's well-exposedness is numpy's (libm) on CPU: a few thousand
  values, moved there from any device.

float64 is needed everywhere the values are not exact integers: the running sums of a 1000-row image
carry ~1e3 in magnitude and their differences must keep the low bits (float32's 24 bits would lose
the 8-bit rounding margin), and the rounding of each step must be MATLAB's double one. Only the
8-bit input levels (uint8) and the window counts (exact integers) are held otherwise.

Speed. On CPU each level is computed in strips of rows that stay in cache (`rows` in `fuse_tensor`):
box sums are produced strip by strip from running row sums, and the statistics, weights and details
of a strip are computed before the next; any strip height gives the same bits. All exposures (and
the N pairs of a batch) go through each operation together. On CPU the fusion runs on one thread
(`_one_cpu_thread` says why); on CUDA a strip is the whole image.

Conventions. `fuse_float` is the method on float64 [0, 1] data and returns the unclipped result
(roughly -0.5..1.5 on real pairs), as the official code leaves it. `fuse_uint8` saves it as MATLAB's
`im2uint8` does (clip to [0, 1], round half up), which is what MEFB stores. `fuse` is the harness
boundary: it first quantises the float32 [0, 1] inputs to 8 bits (the official code reads 8-bit files
with `im2double`) and returns the 8-bit result / 255 as float32.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from baselines.mef.base import check_pair
from cfanet.images import quantize
from cfanet.methods import register_method

METHOD = "Fast-SPD-MEF"

ROWS_PER_STRIP = 64
"""Default strip height on CPU: a strip's planes (12 x 64 rows of the image's width on the finest level)
stay in the caches between the operations that use them."""


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


# -- exact element-wise helpers --------------------------------------------------------------------


def _constant(value: float, like: torch.Tensor) -> torch.Tensor:
    """`value` as a 0-d tensor on `like`'s device: CUDA divides by a host scalar through its reciprocal."""
    return torch.tensor(value, dtype=like.dtype, device=like.device)


def _sqrt_(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded square root, in place. torch's CPU sqrt (MKL) is not; numpy's and CUDA's are."""
    if x.device.type == "cpu":
        array = x.numpy()
        np.sqrt(array, out=array)
        return x
    return x.sqrt_()


def _split(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dekker's split: a = high + low exactly, each with at most 26 significant bits."""
    high = a * 134217729.0  # 2^27 + 1
    high -= high - a
    return high, a - high


def _product_tail(a_split, b_split, product: torch.Tensor) -> torch.Tensor:
    """The rounding error of `product` = fl(a b), exactly: a b = product + tail (Dekker, without FMA)."""
    (a_hi, a_lo), (b_hi, b_lo) = a_split, b_split
    tail = a_hi * b_hi
    tail -= product
    if a_hi is b_hi and a_lo is b_lo:  # a square: the two cross terms are equal
        tail.add_(a_hi * a_lo, alpha=2)
    else:
        tail += a_hi * b_lo
        tail += a_lo * b_hi
    tail += a_lo * b_lo
    return tail


def integer_powers(x: torch.Tensor, exponents: Sequence[int]) -> list[torch.Tensor]:
    """x^n for each integer n >= 0 in `exponents`, correctly rounded (up to ties within ~2^-50 ulp).

    x^n is carried as an unevaluated sum high + low of doubles, built with exact products (Dekker's
    algorithm) and rounded once at the end; x^4 as the square of x^2 (the case p = 4 of the
    structure weights), other powers one factor of x at a time. Only +, - and * are used, so the
    result is the same on every device and does not depend on a libm's `pow`. For positive x of
    moderate size (no overflow or underflow in the products), as the signal strengths here.
    """
    results: dict[int, torch.Tensor] = {0: torch.ones_like(x), 1: x.clone()}
    top = max(exponents)
    if top < 2:
        return [results[n] for n in exponents]
    x_split = _split(x)
    square = x * x
    square_low = _product_tail(x_split, x_split, square)  # x^2 = square + square_low exactly
    results[2] = square
    if 4 in exponents and top == 4:
        square_split = _split(square)
        fourth = square * square
        low = _product_tail(square_split, square_split, fourth)
        low.add_(square * square_low, alpha=2)  # (s + e)^2 = s^2 + 2 s e (+ e^2, below the last bit)
        results[4] = fourth + low
        if 3 in exponents:
            cube = square * x
            low = _product_tail(square_split, x_split, cube)
            low += square_low * x
            results[3] = cube + low
        return [results[n] for n in exponents]
    high, low = square, square_low
    for n in range(3, top + 1):
        product = high * x
        tail = _product_tail(_split(high), x_split, product)
        tail += low * x
        high, low = product, tail
        if n in exponents:
            results[n] = high + low
    return [results[n] for n in exponents]


def _sum_over(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum over `dim` adding left to right, as MATLAB's `sum` (and numpy's, for fewer than 8 terms)."""
    parts = t.unbind(dim)
    total = parts[0].clone()
    for part in parts[1:]:
        total += part
    return total


# -- 1. box sums -----------------------------------------------------------------------------------


def _window_counts(n: int, radius: int, step: int, device) -> torch.Tensor:
    """Per position i < n, how many indices of [i - r, i + r] within [0, n) are multiples of `step`."""
    i = torch.arange(n, device=device)
    low, high = (i - radius).clamp(min=0), (i + radius).clamp(max=n - 1)
    return (torch.div(high, step, rounding_mode="floor") - torch.div(low + step - 1, step, rounding_mode="floor")
            + 1).to(torch.float64)


def _running_sum_(x: torch.Tensor) -> None:
    """x[j] = x[j - 1] + x[j] along dim -2 for j = 1, 2, ..., in place: `cumsum` in its order, as one
    vectorised addition per row."""
    rows = x.unbind(-2)
    for previous, row in zip(rows, rows[1:]):
        torch.add(previous, row, out=row)


def _column_running_sum(x: torch.Tensor, out: torch.Tensor, loops: bool) -> None:
    """out = cumsum(x) along the last dim, in order: torch's CPU `cumsum` (a sequential loop), or with
    `loops` one vectorised addition per column."""
    if not loops:
        torch.cumsum(x, -1, out=out)
        return
    out.copy_(x)
    _running_sum_(out.transpose(-1, -2))


def _box_sum_strips(source: Callable[[int, int, torch.Tensor], None], lead: tuple[int, ...], height: int,
                    width: int, radius: int, rows: int, like: torch.Tensor,
                    loops: bool) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Box sums of planes (*lead, height, width), strip by strip: yields (a, b, sums of rows a..b-1).

    `source(a, b, out)` writes the planes' rows a..b-1 into `out` (*lead, b - a, width). The sums of a
    strip are a view of a buffer that the next strip overwrites. Along each axis the clipped window
    sum is S[min(i + r + 1, n)] - S[max(i - r, 0)] with S the running sum (S[0] = 0), written as
    E[i + 2r + 1] - E[i] for S extended by r + 1 zeros in front and r copies of S[n] behind: the same
    subtractions (and bits) as He's `boxfilter.m` and the earlier NumPy code. The running sums are
    torch's `cumsum` on CPU (sequential loops, in C++) or, with `loops`, one vectorised addition per row
    and per column (CUDA's `cumsum` is a parallel scan, which adds in another order).
    """
    r = radius
    new = dict(dtype=like.dtype, device=like.device)
    # E[base .. base + filled - 1]: E[j] = 0 for j <= 0, S[j] for 0 < j <= height, S[height] beyond
    extended = torch.empty(lead + (rows + 2 * r + 1, width), **new)
    extended[..., :r + 1, :].zero_()
    base, filled = -r, r + 1
    row_sums = torch.empty(lead + (rows, width), **new)
    columns = torch.zeros(lead + (rows, width + 2 * r + 1), **new)  # zero heads stay zero
    sums = torch.empty(lead + (rows, width), **new)
    for a in range(0, height, rows):
        b = min(a + rows, height)
        t = b - a
        drop = (a - r) - base
        if drop > 0:
            kept = filled - drop
            kept_rows = extended[..., drop:filled, :]
            extended[..., :kept, :] = kept_rows if drop >= kept else kept_rows.clone()
            base, filled = a - r, kept
        top = base + filled - 1  # the last E index held
        real = min(b + r, height)
        if real > top:
            count = real - top
            # E[top + 1 ..] = E[top] + rows, running (the very first row as it is, as cumsum does)
            source(top, real, extended[..., filled:filled + count, :])
            run = extended[..., filled - (top != 0):filled + count, :]
            if loops:
                _running_sum_(run)
            else:
                torch.cumsum(run, -2, out=run)
            filled += count
            top = real
        if b + r > top:
            pad = b + r - top
            extended[..., filled:filled + pad, :] = extended[..., filled - 1:filled, :]
            filled += pad
        torch.sub(extended[..., 2 * r + 1:2 * r + 1 + t, :], extended[..., :t, :], out=row_sums[..., :t, :])
        interior = columns[..., :t, r + 1:r + 1 + width]
        _column_running_sum(row_sums[..., :t, :], interior, loops)
        if r:
            columns[..., :t, r + 1 + width:] = columns[..., :t, r + width:r + width + 1]
        torch.sub(columns[..., :t, 2 * r + 1:], columns[..., :t, :width], out=sums[..., :t, :])
        yield a, b, sums[..., :t, :]


def box_sum_hw(x: torch.Tensor, radius: int, *, rows: int | None = None, loops: bool | None = None) -> torch.Tensor:
    """Sum over the (2r+1) x (2r+1) window around each pixel, clipped at the borders, of every plane of
    `x` (..., H, W), any size, float64: rows first, then columns, as He's cumulative-sum `boxfilter.m`
    (for sides of at least 2r+1; the same bits). `rows` (strip height) and `loops` (running sums by
    one vectorised addition per row and column, as on CUDA) change the speed, never the result."""
    x = x.to(torch.float64)
    height, width = x.shape[-2:]
    lead = tuple(x.shape[:-2])
    rows, loops = _strategy(x.device, height, rows, loops)
    out = torch.empty_like(x)

    def source(a, b, out):
        out.copy_(x[..., a:b, :])

    for a, b, sums in _box_sum_strips(source, lead, height, width, radius, rows, x, loops):
        out[..., a:b, :] = sums
    return out


def box_sum(x: np.ndarray, radius: int) -> np.ndarray:
    """`box_sum_hw` on the first two axes of a float array (H, W, ...); float64, the same shape."""
    x = np.asarray(x, dtype=np.float64)
    t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x.reshape(x.shape[:2] + (-1,)), 2, 0)))
    return np.moveaxis(box_sum_hw(t, radius).numpy(), 0, 2).reshape(x.shape)


def box_count(height: int, width: int, radius: int) -> np.ndarray:
    """Number of pixels in each clipped window, (H, W): `box_sum(ones)`; divides a box sum into a mean."""
    return (_window_counts(height, radius, 1, "cpu")[:, None] * _window_counts(width, radius, 1, "cpu")).numpy()


def _strategy(device: torch.device, height: int, rows: int | None, loops: bool | None) -> tuple[int, bool]:
    """(strip height, running sums by loops) for a level of `height` rows: the arguments, or the device's
    defaults (CPU: `ROWS_PER_STRIP` and `cumsum`; elsewhere one strip and loops)."""
    on_cpu = torch.device(device).type == "cpu"
    if rows is None:
        rows = ROWS_PER_STRIP if on_cpu else height
    if loops is None:
        loops = not on_cpu
    if not on_cpu and not loops:
        raise ValueError(f"{METHOD}: on {device} the running sums need loops (its cumsum adds in another order)")
    if rows < 1:
        raise ValueError(f"{METHOD}: rows per strip must be >= 1, got {rows}")
    rows = min(rows + rows % 2, max(height + height % 2, 2))  # even, so strips start on even rows
    return rows, loops


# -- 2. per-level weights --------------------------------------------------------------------------


def patch_statistics(sums: torch.Tensor, count: torch.Tensor, radius: int, eps: float,
                     colour: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Patch mean mu_k and signal strength c_k, both (N, K, h, w), from box sums (N, K, 2C, h, w).

    `sums` holds the box sums of the C channels of X_k, then those of X_k^2 (C = 3 on the colour
    level, 1 on gray levels); it is divided by `count` (h, w) in place. On a colour level the mean and
    variance pool the three channels (one scalar map per exposure) and the strength is
    std * sqrt(3 R^2) + eps; on a gray level it is std * sqrt(R^2) + eps, with R = 2r + 1. The
    operation order follows `weight_cal_detail.m`, so the maps equal the official ones bit for bit
    (checked under GNU Octave).
    """
    sums /= count
    patch = 2 * radius + 1
    if colour:
        three = _constant(3.0, sums)
        mean = sums[:, :, 0] + sums[:, :, 1]
        mean += sums[:, :, 2]
        mean /= three
        variance = sums[:, :, 3] + sums[:, :, 4]
        variance += sums[:, :, 5]
        square = mean * mean
        square *= 3
        variance -= square
        variance /= three
        scale = math.sqrt(3 * patch ** 2)
    else:
        mean = sums[:, :, 0]
        variance = sums[:, :, 1] - mean * mean
        scale = math.sqrt(patch ** 2)
    strength = _sqrt_(variance.clamp_(min=0.0))
    strength *= scale
    strength += eps
    return mean, strength


def structure_weights(strength: torch.Tensor, p: float, eps: float, out: torch.Tensor | None = None) -> torch.Tensor:
    """Detail weights WD_k = c_k^(p-1) / sum_j (c_j^p + eps) * max_j c_j; (N, K, h, w) from c (N, K, h, w).

    The patch structure (x_k - mu_k) / c_k weighted by c_k^p / sum_j c_j^p and given the strongest
    strength max_j c_j: the 1/c_k is folded into the weight. For an integer p the powers are correctly
    rounded (`integer_powers`); MATLAB's own pow may differ from that in the last bit, which never
    reached an 8-bit output in our checks. A fractional p uses the device's `pow`. Written into `out`
    when given.
    """
    if float(p).is_integer() and p >= 1:
        power, lower = integer_powers(strength, (int(p), int(p) - 1))
    else:
        power, lower = strength ** p, strength ** (p - 1)
    power += eps
    out = torch.div(lower, _sum_over(power, 1).unsqueeze(1), out=out)  # the sum exposure by exposure, in order
    strongest = strength[:, 0].clone()
    for k in range(1, strength.shape[1]):
        torch.maximum(strongest, strength[:, k], out=strongest)
    out *= strongest.unsqueeze(1)
    return out


def laplacian_magnitude(x: torch.Tensor) -> torch.Tensor:
    """|4-neighbour Laplacian| ([0 1 0; 1 -4 1; 0 1 0], replicated borders) of each map (..., h, w)."""
    shape = x.shape
    padded = F.pad(x.reshape((-1, 1) + tuple(shape[-2:])), (1, 1, 1, 1), mode="replicate").reshape(
        tuple(shape[:-2]) + (shape[-2] + 2, shape[-1] + 2))
    centre = padded[..., 1:-1, 1:-1]
    # Summed right, down, centre, up, left: the order of GNU Octave's imfilter (checked bit for bit);
    # MATLAB's order is not documented, and the 8-bit results match MEFB either way.
    total = padded[..., 1:-1, 2:] + padded[..., 2:, 1:-1]
    total += -4.0 * centre
    total += padded[..., :-2, 1:-1]
    total += padded[..., 1:-1, :-2]
    return total.abs_()


def well_exposedness(x: torch.Tensor, slope: float) -> torch.Tensor:
    """(2/pi) atan(slope * min(x, 1 - x)): 0 at black and white, rising steeply toward mid-gray.

    Computed by numpy on CPU (its libm's atan, as the earlier code) for any device: only the coarsest
    level, a few thousand values, uses it."""
    values = x.detach().to("cpu", torch.float64).numpy()
    result = (2 / math.pi) * np.arctan(slope * np.where(values <= 0.5, values, 1 - values))
    return torch.from_numpy(result).to(x.device)


def base_weights(x: torch.Tensor, config: FastSpdMefConfig) -> torch.Tensor:
    """Coarsest-level base weights |L(X_k)| E(X_k) + eps, normalised over the K exposures; (N, K, h, w)."""
    weights = laplacian_magnitude(x) * well_exposedness(x, config.exposedness_slope)
    weights += config.eps
    return weights / _sum_over(weights, 1).unsqueeze(1)


# -- 3. level outputs ------------------------------------------------------------------------------


def _count_rows(height: int, width: int, radius: int, step: int, device: torch.device) -> Callable:
    """(a, b) -> the window counts of rows a..b-1, (b - a, W): the box sums of ones (step 1) or of the
    even grid's indicator (step 2), exact integers."""
    row_counts = _window_counts(height, radius, step, device)
    column_counts = _window_counts(width, radius, step, device)
    return lambda a, b: row_counts[a:b, None] * column_counts


def _level(x: Callable[[int, int, torch.Tensor], None], shape: tuple[int, ...], device: torch.device, radius: int,
           config: FastSpdMefConfig, rows: int, loops: bool,
           coarsest: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One level: (its output (N, C, H, W), the next level's input (N, K, 1, ceil(H/2), ceil(W/2))).

    The level's exposures X_k are `shape` (N, K, C, H, W) (C = 3 on the finest level, 1 after), given
    as `x(a, b, out)`, which writes their rows a..b-1 into `out`, float64 (N, K, C, b - a, W) on
    `device`. The output is the detail
    D = sum_k [box_mean(WD_k) X_k - box_mean(mu_k WD_k)]: at every pixel the average, over the
    patches covering it, of max_j c_j * sum_k w_k (x_k - mu_k) / c_k. On the coarsest level
    (`coarsest`) it is the fused result: D plus the base sum_k box_mean(mu_k WB_k), and there is no
    next input (None).
    """
    n, k, c, height, width = shape
    colour = c == 3
    count = _count_rows(height, width, radius, 1, device)
    new = dict(dtype=torch.float64, device=device)
    like = torch.empty((), **new)

    # pass 1: box sums of X and X^2 -> patch statistics -> weights WD_k and mu_k WD_k (and mu_k WB_k)
    def moments(a, b, out):
        exposures = out[:, :, :c]
        x(a, b, exposures)
        torch.mul(exposures, exposures, out=out[:, :, c:])

    weights = torch.empty((n, k, 3 if coarsest else 2, height, width), **new)
    means = torch.empty((n, k, height, width), **new) if coarsest else None
    next_input = None if coarsest else torch.empty((n, k, 1, (height + 1) // 2, (width + 1) // 2), **new)
    for a, b, sums in _box_sum_strips(moments, (n, k, 2 * c), height, width, radius, rows, like, loops):
        mean, strength = patch_statistics(sums, count(a, b), radius, config.eps, colour)
        detail_weights = structure_weights(strength, config.p, config.eps, out=weights[:, :, 0, a:b])
        torch.mul(mean, detail_weights, out=weights[:, :, 1, a:b])
        if coarsest:
            means[:, :, a:b] = mean
        else:
            next_input[:, :, 0, a // 2:(b + 1) // 2] = mean[..., ::2, ::2]
    if coarsest:
        level = torch.empty((n, k, c, height, width), **new)
        x(0, height, level)
        torch.mul(means, base_weights(level[:, :, 0], config), out=weights[:, :, 2])

    # pass 2: box means of the weights -> sum_k [box_mean(WD_k) X_k - box_mean(mu_k WD_k) (+ base_k)]
    def weight_rows(a, b, out):
        out.copy_(weights[..., a:b, :])

    output = torch.empty((n, c, height, width), **new)
    buffer = torch.empty((n, k, c, rows, width), **new)
    for a, b, sums in _box_sum_strips(weight_rows, (n, k, weights.shape[2]), height, width, radius, rows, like,
                                      loops):
        sums /= count(a, b)
        terms = buffer[..., :b - a, :]  # (N, K, C, b - a, W): X_k, then its terms
        x(a, b, terms)
        terms *= sums[:, :, 0].unsqueeze(2)
        terms -= sums[:, :, 1].unsqueeze(2)
        if coarsest:
            terms += sums[:, :, 2].unsqueeze(2)
        total = output[:, :, a:b]
        total.copy_(terms[:, 0])
        for j in range(1, k):  # exposure by exposure, in order, as MATLAB's sum adds
            total += terms[:, j]
    return output, next_input


def _upsample_add(coarse: torch.Tensor, detail: torch.Tensor, radius: int, rows: int, loops: bool,
                  finish: Callable[[int, int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Normalised box upsampling of `coarse` (N, h, w) to the size of `detail` (N, C, H, W), plus
    `detail`, in place in `detail`: `coarse` on the even grid of a zero map, box-summed, divided by the
    box sum of that grid's indicator. `finish(a, b, rows)` is called on each strip of finished rows."""
    n, _, height, width = detail.shape
    indicator = _count_rows(height, width, radius, 2, detail.device)

    def grid_rows(a, b, out):
        out.zero_()
        first = a + a % 2
        out[:, first - a::2, ::2] = coarse[:, first // 2:(b + 1) // 2]

    for a, b, sums in _box_sum_strips(grid_rows, (n,), height, width, radius, rows, detail, loops):
        sums /= indicator(a, b)
        detail[:, :, a:b] += sums.unsqueeze(1)
        if finish is not None:
            finish(a, b, detail[:, :, a:b])
    return detail


# -- 4. reconstruction -----------------------------------------------------------------------------


def intermediate_levels(height: int, width: int) -> int:
    """Number of intermediate levels: the official floor(log(min(H, W)) / log(2)) - 5, at least 0.

    Evaluated in float64 as MATLAB does (`math.log` is correctly rounded here). For every side below
    2^24 this equals floor(log2(min side)) exactly, powers of two included (64 -> 1, 128 -> 2,
    1024 -> 5); the one float quirk, log(2^29)/log(2) = 29.000000000000004, floors correctly too.
    Below 64 pixels the formula gives <= 0 and the official demo crashes; we clamp to 0.
    """
    return max(math.floor(math.log(min(height, width)) / math.log(2)) - 5, 0)


@torch.no_grad()
def fuse_tensor(x: torch.Tensor, config: FastSpdMefConfig = OFFICIAL, *, rows: int | None = None,
                loops: bool | None = None) -> torch.Tensor:
    """Fuse N stacks of K >= 2 static exposures: float64 (N, K, 3, H, W) in [0, 1] -> float64 (N, 3, H, W).

    This is `demo_multi_sta.m` on `im2double` images, for each of the N stacks, on `x`'s device. The
    result is not clipped. `rows` (strip height, default `ROWS_PER_STRIP` on CPU, the whole image on
    other devices) and `loops` (running sums by one vectorised addition per row and column instead of
    `cumsum`; the default, and required, on every device but the CPU) only change the speed: the result
    is the same, bit for bit.
    """
    if x.dim() != 5 or x.shape[2] != 3 or x.shape[1] < 2:
        raise ValueError(f"{METHOD}: expected exposures shaped (N, K >= 2, 3, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[3] == 0 or x.shape[4] == 0:
        raise ValueError(f"{METHOD}: exposures are empty, shape {tuple(x.shape)}")
    x = x.to(torch.float64).contiguous()

    def rows_(a, b, out):
        out.copy_(x[..., a:b, :])

    return _fuse(rows_, tuple(x.shape), x.device, config, rows, loops)


def _fuse(finest_rows: Callable[[int, int, torch.Tensor], None], shape: tuple[int, ...], device: torch.device,
          config: FastSpdMefConfig, rows: int | None, loops: bool | None,
          finish: Callable[[int, int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """`fuse_tensor` on exposures (N, K, 3, H, W) given by rows (see `_level`); `finish` sees the output's
    strips as they are completed (see `_upsample_add`)."""
    height, width = shape[-2:]

    def strategy(h):
        return _strategy(device, h, rows, loops)

    def rows_of(t):
        def rows_(a, b, out):
            out.copy_(t[..., a:b, :])
        return rows_

    with _one_cpu_thread(device):
        finest, level_input = _level(finest_rows, shape, device, config.radius_fine, config, *strategy(height))
        details = []
        for _ in range(intermediate_levels(height, width)):
            detail, level_input = _level(rows_of(level_input), tuple(level_input.shape), device, config.radius_interm,
                                         config, *strategy(level_input.shape[-2]))
            details.append(detail)
        fused, _ = _level(rows_of(level_input), tuple(level_input.shape), device, config.radius_coarse, config,
                          *strategy(level_input.shape[-2]), coarsest=True)
        for detail in reversed(details):
            fused = _upsample_add(fused[:, 0], detail, config.radius_interm, *strategy(detail.shape[-2]))
        return _upsample_add(fused[:, 0], finest, config.radius_fine, *strategy(height), finish)


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device):
    """On CPU, torch's intra-op threads set to one for the call (restored after), elsewhere nothing.

    A fusion is some ten thousand small operations per megapixel. With intra-op threads each one waits
    for all of them, and one core busy with another process made the whole up to 10x slower (2-3 s
    per megapixel instead of 0.25) on this project's 2-core machines. A thread per exposure instead
    (each with one intra-op thread; tried) saved ~20% there when idle and lost ~15% when busy.
    """
    if torch.device(device).type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)


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
    return np.stack(arrays)


def fuse_float(exposures: Sequence[np.ndarray], config: FastSpdMefConfig = OFFICIAL) -> np.ndarray:
    """Fuse K >= 2 static exposures, each float (H, W, 3) in [0, 1]; float64 (H, W, 3), unclipped.

    This is `demo_multi_sta.m` on `im2double` images (`fuse_tensor` on CPU). The result is not clipped
    (the official code displays it as is); `fuse_uint8` saves it.
    """
    x = torch.from_numpy(_check_exposures(exposures).transpose(0, 3, 1, 2).copy())[None]
    return fuse_tensor(x, config)[0].permute(1, 2, 0).numpy()


def fuse_uint8(exposures: Sequence[np.ndarray], config: FastSpdMefConfig = OFFICIAL) -> np.ndarray:
    """`fuse_float` saved as MATLAB's `im2uint8` does (clip to [0, 1], round half up): uint8 (H, W, 3)."""
    return quantize(fuse_float(exposures, config), bits=8)


def _levels_8bit_(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] float64 -> the 8-bit level k, in place: round half up, clipped, NaN as 0, as
    `cfanet.images.quantize` (and MATLAB's `im2uint8`) do."""
    return x.nan_to_num_(nan=0.0).clamp_(0.0, 1.0).mul_(255.0).add_(0.5).floor_()


@torch.no_grad()
def fuse(over: torch.Tensor, under: torch.Tensor, config: FastSpdMefConfig = OFFICIAL) -> torch.Tensor:
    """Harness boundary: float32 RGB (N, 3, H, W) in [0, 1] twice -> fused float32 (N, 3, H, W).

    Inputs are first quantised to 8 bits (round half up), since the official code reads 8-bit
    files; the output is the 8-bit image the official code (and MEFB) saves, divided by 255. The
    method is symmetric, so the order of `over` and `under` does not matter. Computed on the inputs'
    device, the N pairs in one batch.
    """
    check_pair(over, under, METHOD)
    if over.shape[2] == 0 or over.shape[3] == 0:
        raise ValueError(f"{METHOD}: exposures are empty, shape {tuple(over.shape)}")
    with _one_cpu_thread(over.device):
        return _fuse_8bit(over, under, config)


def _fuse_8bit(over: torch.Tensor, under: torch.Tensor, config: FastSpdMefConfig) -> torch.Tensor:
    """`fuse` after its checks."""
    n, _, height, width = over.shape
    device = over.device
    step = _strategy(device, height, None, None)[0]
    # The 8-bit levels of both exposures (N, 2, 3, H, W), made (and read back) in strips of rows.
    levels = torch.empty((n, 2, 3, height, width), dtype=torch.uint8, device=device)
    for a in range(0, height, step):
        for k, image in enumerate((over, under)):
            levels[:, k, :, a:a + step] = _levels_8bit_(image[:, :, a:a + step].to(torch.float64, copy=True))
    scale = torch.tensor(255.0, dtype=torch.float64, device=device)
    out = torch.empty((n, 3, height, width), dtype=torch.float32, device=device)
    scale32 = scale.to(torch.float32)

    def exposures(a, b, target):
        target.copy_(levels[..., a:b, :])
        target /= scale

    def finish(a, b, fused):
        target = out[:, :, a:b]
        target.copy_(_levels_8bit_(fused.clone()))
        target /= scale32

    _fuse(exposures, tuple(levels.shape), device, config, None, None, finish)
    return out


@register_method("mef", deep=False, paper_order=2)
class FastSpdMef:
    """Fast SPD-MEF behind the MEF harness convention: `fuse(over, under)` on float32 RGB [0, 1].

    Protocols (`cfanet.protocols`): its output is the authors' MATLAB code's bit for bit (MEFB's
    published images), so "exact" and "official" are the same computation.
    """

    name: ClassVar[str] = METHOD
    protocols = ("exact", "official")

    def __init__(self, config: FastSpdMefConfig = OFFICIAL):
        self.config = config

    def fuse(self, over: torch.Tensor, under: torch.Tensor) -> torch.Tensor:
        """See the module-level `fuse`."""
        return fuse(over, under, self.config)

    def __repr__(self) -> str:
        return f"FastSpdMef({self.config})"
