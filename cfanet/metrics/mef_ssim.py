"""MEF-SSIM (Ma, Zeng, Wang, TIP 2015) exactly as the official MATLAB `mef_ms_ssim.m` / `mef_ssim.m`.

This is the kedema.org code that MEFB ships (algorithms.md §2): gray images from MATLAB `rgb2gray`
on uint8, an adaptive exponent p = tan(pi R / 2) capped at 10 (not a fixed p = 4), the desired
patch built with an 11x11 box window and scored with an 11x11 Gaussian (sigma 1.5), 'valid'
windows only, C = (0.03 * 255)^2, three scales joined by 2x2 top-left-anchored mean downsampling.

MATLAB loops over pixels; here every per-patch vector quantity is rewritten with window sums of
products of the images (the fast exact formulation of algorithms.md §2.2), so one scale costs a
few separable 11-tap filters. It matches MEFB's stored values to their 5-digit precision.

Computation is in torch, on the device of the input (CPU or CUDA), in float64 throughout, and in
strips of rows on the CPU (`_torch_window`). Where float64 is needed, and why:

- box window sums of the images and of their pairwise products (steps 1-2): exact in float64 (8-bit
  values, their 2x2 means and the products are dyadic rationals of few bits), so a flat patch has
  exactly zero variance, as in MATLAB, and the branch points (R > 1, ||u|| > 0) fall as MATLAB's do;
- Gaussian window sums of products (step 7): variances are differences of numbers up to 128^2 (the
  images less 128) that can be ~1e-2 for nearly flat patches; float32 would round each window sum
  by ~1e-3, the size of the result;
- the exponent p = tan(pi R / 2): dp/dR reaches ~160 below the cap, so float32's R (6e-8) would
  move the weights (ed / n)^p by ~1e-4 relative. The rest of the per-pixel algebra is cheap next to
  the filters and stays in float64 with them. (ed / n)^p is evaluated as exp(p log(ed / n)), twice
  as fast as pow, with a relative error below ~1e-14.
Against the float64 NumPy implementation this replaced (scipy filters), values agree to ~1e-15.

The batched entry points (`mef_ms_ssim_batch`, `mef_ssim_scales_batch`) score N fused images of
one size against their K sources in one pass and return tensors on the inputs' device; the
single-image functions (`mef_ms_ssim`, ...) keep their numpy-friendly forms. CPU work follows
`torch.set_num_threads`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from cfanet.color import RGB2GRAY_WEIGHTS, rgb2gray_uint8
from cfanet.metrics._inputs import eight_bit_tensor, is_tensor, quantize_unit
from cfanet.metrics._window import WINDOW

if TYPE_CHECKING:
    import torch

__all__ = ["MefSsimResult", "combine_scales", "downsample", "mef_ms_ssim", "mef_ms_ssim_batch", "mef_ssim_map",
           "mef_ssim_scales_batch", "mef_ssim_single", "to_mef_gray"]

C = (0.03 * 255.0) ** 2  # 58.5225
EPS = float(np.finfo(np.float64).eps)  # MATLAB eps
P_MAX = 10.0
ED_OFFSET = 0.001  # added to every signal strength in mef_ssim.m
_N2 = float(WINDOW * WINDOW)  # pixels per patch
# MS-SSIM's first three exponents, normalised by their sum (algorithms.md §2.3).
_RAW_WEIGHTS = (0.0448, 0.2856, 0.3001)
SCALE_WEIGHTS = tuple(w / sum(_RAW_WEIGHTS) for w in _RAW_WEIGHTS)
LEVELS = len(SCALE_WEIGHTS)
MIN_SIDE = WINDOW * 2 ** (LEVELS - 1)  # 44: below this mef_ms_ssim.m returns -Inf
# Subtracted before the window statistics, which are invariant to a common offset: it halves the
# magnitudes and so the cancellation in the moment differences, and keeps 8-bit values exact.
_CENTRE = 128.0


@dataclass(frozen=True)
class MefSsimResult:
    """Multi-scale MEF-SSIM: `score` = prod(per_scale ** SCALE_WEIGHTS), finest scale first.

    `score` is -inf and `per_scale` empty when the image is too small (min side < 44), as in MATLAB.
    """

    score: float
    per_scale: tuple[float, ...]


def to_mef_gray(image) -> np.ndarray:
    """One image -> the float64 (H, W) gray image on 0..255 that the MATLAB code scores.

    Accepted forms (anything else raises TypeError or ValueError):
    - float torch tensor or float numpy array, RGB in [0, 1], shaped (1, 3, H, W) or (3, H, W):
      quantised to uint8 (clip, round half up, as an 8-bit save), then MATLAB `rgb2gray` on uint8;
    - uint8 numpy array (H, W, 3), RGB channel-last (what `read_image_array` returns): `rgb2gray`;
    - a 2-D array or tensor (H, W): already gray **on the 0..255 scale**, used as is (no rounding).
    Channel order must be RGB; an OpenCV BGR array gives a different score.
    """
    if is_tensor(image) and image.ndim != 2:
        if not image.is_floating_point():
            raise TypeError(f"RGB tensors must be float in [0, 1], got dtype {image.dtype}")
        rgb = quantize_unit(image)
    else:
        rgb = image.detach().cpu().numpy() if is_tensor(image) else np.asarray(image)
        if rgb.ndim == 2:
            return rgb.astype(np.float64)
        if rgb.dtype == np.uint8:
            if rgb.ndim != 3 or rgb.shape[2] != 3:
                raise ValueError(f"uint8 images must be RGB shaped (H, W, 3), got {rgb.shape}")
            rgb = np.moveaxis(rgb, 2, 0)
        elif np.issubdtype(rgb.dtype, np.floating):
            rgb = quantize_unit(rgb)
        else:
            raise TypeError(f"unsupported image dtype {rgb.dtype}; use uint8 RGB or float RGB in [0, 1]")
    if rgb.ndim == 4 and rgb.shape[0] == 1:
        rgb = rgb[0]
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"float RGB images must be shaped (1, 3, H, W) or (3, H, W), got {tuple(rgb.shape)}")
    return rgb2gray_uint8(np.ascontiguousarray(rgb)).astype(np.float64)


def _check_shapes(sources, fused) -> None:
    if sources.ndim != 3 or sources.shape[0] < 2:
        raise ValueError(f"sources must be a (K, H, W) stack with K >= 2, got shape {tuple(sources.shape)}")
    if tuple(fused.shape) != tuple(sources.shape[1:]):
        raise ValueError(f"fused image shape {tuple(fused.shape)} does not match source shape "
                         f"{tuple(sources.shape[1:])}")


# --- the torch core: (N, K+1, H, W) float64 gray stacks, sources first, the fused image last --------


class _Layout(NamedTuple):
    """Which planes a strip filters, for K sources (see `_strip_quality`).

    Planes: x_1..x_K, x_k^2 (K), x_k x_l for k < l, then f, x_k f (K), f^2. The first
    K + K(K+1)/2 of them (the sources' moments) are also box-summed. Squares come before the
    cross products so that every group is a slice, not a gather.
    """

    k: int
    cross: tuple[tuple[int, int], ...]  # the (k, l), k < l, in plane order

    @property
    def fused(self) -> int:  # index of f; also the number of box-summed planes
        return 2 * self.k + len(self.cross)

    @property
    def planes(self) -> int:
        return self.fused + self.k + 2


@lru_cache(maxsize=16)
def _layout(k: int) -> _Layout:
    return _Layout(k=k, cross=tuple((a, b) for a in range(k) for b in range(a + 1, k)))


def _strip_quality(strip: torch.Tensor, lay: _Layout, planes: torch.Tensor) -> torch.Tensor:
    """q (algorithms.md §2.2 steps 1-7) at the valid centres of `strip`: (N, K+1, r+10, w) -> (N, r, w-10).

    `strip` is float64 gray on 0..255 (sources, then fused); `planes` is an (N, planes, r+10, w)
    float64 workspace (overwritten). The window statistics are those of the images less 128: each
    statistic below is invariant to a common offset, and centring halves the magnitudes and so the
    cancellation in the moment differences (exact for 8-bit values and their 2x2 means).

    All algebra is per pixel on window sums: with a_k = w_k / ed_k and x~ = x - mu (box means),
    ||u||^2 = sum_kl a_k a_l n^2 cov_kl, and the Gaussian moments of r = s u (s = c^ / ||u||) reduce
    to Gaussian covariances, which the box means drop out of (exactly, algebraically):
    sigma_r^2 = s^2 sum_kl a_k a_l (G[x_k x_l] - G[x_k] G[x_l]),
    sigma_rf = s sum_k a_k (G[x_k f] - G[x_k] G[f]), sigma_f^2 = G[f f] - G[f]^2.
    Pairs k < l appear once with a factor 2. Most steps run in place on the filters' outputs.
    """
    import torch

    from cfanet.metrics._torch_window import box_sum_valid, gaussian_valid

    k, cross, fused = lay.k, lay.cross, lay.fused
    x = torch.sub(strip[:, :k], _CENTRE, out=planes[:, :k])
    f = torch.sub(strip[:, k], _CENTRE, out=planes[:, fused])
    torch.mul(x, x, out=planes[:, k : 2 * k])
    for index, (a, b) in enumerate(cross):
        torch.mul(x[:, a], x[:, b], out=planes[:, 2 * k + index])
    torch.mul(x, f.unsqueeze(1), out=planes[:, fused + 1 : fused + 1 + k])
    torch.mul(f, f, out=planes[:, -1])
    box = box_sum_valid(planes[:, :fused])  # exact window sums
    gauss = gaussian_valid(planes)

    # Step 1: n^2 cov_kl = sum (x_k - mu_k)(x_l - mu_l) = (n^2 S_kl - S_k S_l) / n^2, with an exact
    # numerator (integers or dyadic rationals below 2**53) and one rounding, as in `_window`'s
    # float64 version: a flat patch gets exactly 0.
    s1, cov = box[:, :k], box[:, k:]
    cov.mul_(_N2)
    cov[:, :k].addcmul_(s1, s1, value=-1.0)
    for index, (a, b) in enumerate(cross):
        cov[:, k + index].addcmul_(s1[:, a], s1[:, b], value=-1.0)
    cov.div_(_N2)
    strength = cov[:, :k].clamp_min(0.0).sqrt_()  # ||x_k - mu_k||
    ed = strength + ED_OFFSET
    # Step 2: R = (||sum_k (x_k - mu_k)|| + eps) / (sum_k ||x_k - mu_k|| + eps), R > 1 -> 1 - eps.
    # (R < 0 cannot happen: both norms are >= 0.)
    total = cov[:, :k].sum(1)
    if cross:
        total.add_(cov[:, k:].sum(1), alpha=2.0)
    consistency = total.clamp_min_(0.0).sqrt_().add_(EPS).div_(strength.sum(1).add_(EPS)).clamp_max_(1.0 - EPS)
    # Steps 3-5: adaptive exponent, weights, desired contrast. (R in (1 - eps, 1], left as is by
    # MATLAB, and 1 - eps both give p = 10.) (ed / n)^p is computed as exp(p log(ed / n)), twice as
    # fast as pow; |p log(ed / n)| <= 10 * 9.3 (ed / n lies in [9e-5, 128]), so its relative error
    # stays below ~1e-14, and exp underflows only where MATLAB's power is far below eps anyway.
    p = torch.tan(consistency.mul_(math.pi / 2)).clamp_max_(P_MAX)
    weights = torch.div(ed, float(WINDOW)).log_().mul_(p.unsqueeze(1)).exp_().add_(EPS)
    weights.div_(weights.sum(1, keepdim=True))
    contrast = ed.amax(1)
    a = weights.div_(ed)  # a_k = w_k / ed_k
    # Step 6: ||u||^2 with u = sum_k a_k (x_k - mu_k); r = u * contrast / ||u|| (r = u = 0 if ||u|| = 0).
    pair_a = torch.empty_like(cov)
    torch.mul(a, a, out=pair_a[:, :k])
    for index, (a_index, b_index) in enumerate(cross):
        torch.mul(a[:, a_index], a[:, b_index], out=pair_a[:, k + index]).mul_(2.0)
    u_norm2 = (pair_a * cov).sum(1)
    scale = contrast.div_(u_norm2.sqrt()).masked_fill_(u_norm2 <= 0, 0.0)
    # Step 7: Gaussian-weighted moments of r and f, as Gaussian covariances (in place).
    g_x, g_f = gauss[:, :k], gauss[:, fused]
    gamma = gauss[:, k:fused]
    gamma[:, :k].addcmul_(g_x, g_x, value=-1.0)
    for index, (a_index, b_index) in enumerate(cross):
        gamma[:, k + index].addcmul_(g_x[:, a_index], g_x[:, b_index], value=-1.0)
    r_var = pair_a.mul_(gamma).sum(1)  # sigma_r^2 / s^2
    r_cov = gauss[:, fused + 1 : fused + 1 + k].addcmul_(g_x, g_f.unsqueeze(1), value=-1.0).mul_(a).sum(1)
    f_var = gauss[:, -1].addcmul_(g_f, g_f, value=-1.0)  # sigma_f^2
    numerator = r_cov.mul_(scale).mul_(2.0).add_(C)
    denominator = scale.mul_(scale).mul_(r_var).add_(f_var).add_(C)
    return numerator.div_(denominator)


def _mean_quality(x: torch.Tensor, q_map: torch.Tensor | None = None) -> torch.Tensor:
    """Single-scale Q per image: the mean of q over the valid centres of the stack `x`.

    `x` is (N, K+1, H, W) float64 gray on 0..255, sources first, fused last. Returns (N,) float64; writes q into `q_map`
    ((N, H-10, W-10)) when given.
    """
    import torch

    from cfanet.metrics._torch_window import blocks, run_blocks

    count, _, height, width = x.shape
    lay = _layout(x.shape[1] - 1)
    out_h, out_w = height - WINDOW + 1, width - WINDOW + 1

    def block_sums(block) -> torch.Tensor:
        images, start, stop = block
        rows = stop - start + WINDOW - 1
        workspace = x.new_empty((images.stop - images.start, lay.planes, rows, width))
        q = _strip_quality(x[images, :, start : start + rows], lay, workspace)
        if q_map is not None:
            q_map[images, start:stop] = q
        return q.sum(dim=(-2, -1))

    plan = blocks(count, out_h, out_w, lay.planes, x.device)
    total = torch.zeros(count, dtype=torch.float64, device=x.device)
    for (images, _, _), sums in zip(plan, run_blocks(block_sums, plan, x.device)):  # in plan order
        total[images] += sums
    return total / (out_h * out_w)


def _downsample(x: torch.Tensor) -> torch.Tensor:
    """Torch form of `downsample` for (N, P, H, W) float64 -> (N, P, ceil(H/2), ceil(W/2)).

    Computed block by block (`blocks`) into one output, so no full-size temporary is allocated.
    """
    import torch

    from cfanet.metrics._torch_window import blocks, run_blocks

    count, planes, height, width = x.shape
    out = x.new_empty((count, planes, (height + 1) // 2, (width + 1) // 2))

    def fill(block) -> None:
        images, start, stop = block
        part = x[images, :, 2 * start : 2 * stop]
        if part.shape[-2] % 2:  # the odd last row, mirrored
            part = torch.cat([part, part[..., -1:, :]], dim=-2)
        if width % 2:
            part = torch.cat([part, part[..., :, -1:]], dim=-1)
        out[images, :, start:stop] = 0.25 * (part[..., 0::2, 0::2] + part[..., 1::2, 0::2]
                                             + part[..., 0::2, 1::2] + part[..., 1::2, 1::2])

    run_blocks(fill, blocks(count, out.shape[-2], out.shape[-1], 4 * planes, x.device), x.device)
    return out


def _per_scale(gray: torch.Tensor) -> torch.Tensor:
    """Q of every scale for (N, K+1, H, W) float64 gray stacks on 0..255 (min side >= 44) -> (N, LEVELS)."""
    import torch

    values = []
    for level in range(LEVELS):
        if level:
            gray = _downsample(gray)  # not rounded, as in MATLAB
        values.append(_mean_quality(gray))
    return torch.stack(values, dim=-1)


def _gray_8bit(rgb: torch.Tensor) -> torch.Tensor:
    """MATLAB `rgb2gray` on uint8 for 8-bit RGB values (..., 3, H, W) -> float64 (..., H, W) integers.

    The same float64 operations, in the same order, as `cfanet.color.rgb2gray_uint8`.
    """
    import torch

    r, g, b = (rgb.select(-3, c).to(torch.float64) for c in range(3))
    wr, wg, wb = RGB2GRAY_WEIGHTS
    gray = wr * r + wg * g + wb * b
    return gray.add_(0.5).floor_().clamp_(0.0, 255.0)


# --- batched API ----------------------------------------------------------------------------------


def _batch_gray(sources, fused) -> torch.Tensor:
    """Validate a batch and return its (N, K+1, H, W) float64 gray stack on the inputs' device."""
    import torch

    from cfanet.metrics._torch_window import blocks, run_blocks

    sources = eight_bit_tensor(sources, "sources")
    fused = eight_bit_tensor(fused, "fused")
    if sources.ndim != 5 or sources.shape[2] != 3 or sources.shape[1] < 2:
        raise ValueError(f"sources must be shaped (N, K, 3, H, W) with K >= 2, got {tuple(sources.shape)} "
                         f"(the order is (sources, fused))")
    if fused.ndim != 4 or fused.shape[1] != 3:
        raise ValueError(f"fused must be shaped (N, 3, H, W), got {tuple(fused.shape)}")
    if sources.shape[0] != fused.shape[0] or sources.shape[-2:] != fused.shape[-2:]:
        raise ValueError(f"sources {tuple(sources.shape)} and fused {tuple(fused.shape)} differ in N, H or W")
    if sources.device != fused.device:
        raise ValueError(f"sources are on {sources.device} but fused is on {fused.device}")
    count, k_count, _, height, width = sources.shape
    gray = torch.empty((count, k_count + 1, height, width), dtype=torch.float64, device=fused.device)

    def fill(block) -> None:
        images, start, stop = block
        gray[images, :k_count, start:stop] = _gray_8bit(sources[images, :, :, start:stop])
        gray[images, k_count, start:stop] = _gray_8bit(fused[images, :, start:stop])

    run_blocks(fill, blocks(count, height, width, 3 * (k_count + 1), fused.device), fused.device)
    return gray


def mef_ssim_scales_batch(sources: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
    """Per-scale MEF-SSIM Q of a batch: (N, LEVELS) float64 on the inputs' device, finest first.

    - `sources`: (N, K, 3, H, W), K >= 2 exposures per image; `fused`: (N, 3, H, W); one H x W for
      the whole batch, both on the same device (CPU or CUDA).
    - Values are 8-bit RGB on the 0..255 scale (not [0, 1]): a uint8 tensor, or any integer or
      float tensor holding integers in 0..255 (anything else raises ValueError). Channel order RGB.
    Each image is converted with MATLAB `rgb2gray` on uint8 (rounded), as `to_mef_gray` does. Images
    with min(H, W) < 44 give an (N, 0) tensor (MATLAB returns -Inf for them).
    """
    gray = _batch_gray(sources, fused)
    if min(gray.shape[-2:]) < MIN_SIDE:
        return gray.new_empty((gray.shape[0], 0))
    if not gray.shape[0]:
        return gray.new_empty((0, LEVELS))
    return _per_scale(gray)


def combine_scales(per_scale: torch.Tensor) -> torch.Tensor:
    """prod_l Q_l ** SCALE_WEIGHTS[l] over the last axis of (..., LEVELS); -inf for (..., 0).

    A negative Q_l (a fusion unrelated to its sources) gives nan where MATLAB's value would be complex.
    """
    import torch

    if per_scale.shape[-1] == 0:
        return torch.full(per_scale.shape[:-1], -math.inf, dtype=torch.float64, device=per_scale.device)
    score = per_scale[..., 0] ** SCALE_WEIGHTS[0]
    for level in range(1, LEVELS):
        score = score * per_scale[..., level] ** SCALE_WEIGHTS[level]
    return score


def mef_ms_ssim_batch(sources: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
    """Multi-scale MEF-SSIM of N fused images against their sources, in one pass: (N,) float64.

    Inputs as in `mef_ssim_scales_batch` (sources (N, K, 3, H, W), fused (N, 3, H, W), 8-bit RGB
    values as uint8 or float tensors on one device). Row i equals `mef_ms_ssim(...).score` of the
    same 8-bit images in any of its forms (e.g. uint8 (H, W, 3) arrays), to ~1e-15; every row is
    -inf when min(H, W) < 44. The result stays on the inputs' device.
    """
    return combine_scales(mef_ssim_scales_batch(sources, fused))


# --- single-image API (numpy or tensors) -----------------------------------------------------------


def _device_of(*objects):
    for obj in objects:
        if is_tensor(obj):
            return obj.device
    return "cpu"


def _as_float64(array, device):
    import torch

    if is_tensor(array):
        return array.detach().to(device=device, dtype=torch.float64)
    return torch.from_numpy(np.asarray(array, dtype=np.float64)).to(device)


def _gray_stack(sources_gray, fused_gray) -> torch.Tensor:
    """(K, H, W) sources and (H, W) fused gray -> (1, K+1, H, W) float64 on fused's device."""
    import torch

    device = _device_of(fused_gray, sources_gray)
    x, f = _as_float64(sources_gray, device), _as_float64(fused_gray, device)
    _check_shapes(x, f)
    if min(f.shape) < WINDOW:
        raise ValueError(f"images must be at least {WINDOW}x{WINDOW} for 11x11 windows, got {tuple(f.shape)}")
    return torch.cat([x, f.unsqueeze(0)]).unsqueeze(0)


def mef_ssim_map(sources_gray, fused_gray):
    """Single-scale local quality map q of `mef_ssim.m` (algorithms.md §2.2 steps 1-7).

    `sources_gray` is (K, H, W) with K >= 2 and `fused_gray` is (H, W), gray on 0..255 (any real
    dtype), numpy arrays or tensors. Returns float64 (H-10, W-10), one value per valid 11x11 patch
    centre: a numpy array, or a tensor on `fused_gray`'s device when `fused_gray` is a tensor.
    """
    stack = _gray_stack(sources_gray, fused_gray)
    q_map = stack.new_empty((1, stack.shape[-2] - WINDOW + 1, stack.shape[-1] - WINDOW + 1))
    _mean_quality(stack, q_map)
    return q_map[0] if is_tensor(fused_gray) else q_map[0].cpu().numpy()


def mef_ssim_single(sources_gray, fused_gray) -> float:
    """Single-scale MEF-SSIM Q (`mef_ssim.m`): the mean of `mef_ssim_map` (§2.2 step 8).

    Same inputs as `mef_ssim_map`; returns a float <= 1 (1 up to ~1e-10 when F reproduces the desired patches).
    """
    return float(_mean_quality(_gray_stack(sources_gray, fused_gray))[0])


def downsample(image):
    """2x2 mean with a top-left anchor and mirror padding at an odd last row/column (§2.3).

    (..., H, W) -> (..., ceil(H/2), ceil(W/2)) float64, not rounded: MATLAB's
    `imfilter(I, ones(2)/4, 'symmetric', 'same')` sampled at every 2nd pixel from the first.
    A tensor gives a tensor on its device, anything else a numpy array.
    """
    x = _as_float64(image, image.device if is_tensor(image) else "cpu")
    out = _downsample(x.reshape((-1, 1) + tuple(x.shape[-2:])))
    out = out.reshape(tuple(x.shape[:-2]) + tuple(out.shape[-2:]))
    return out if is_tensor(image) else out.numpy()


def mef_ms_ssim(sources: Sequence, fused) -> MefSsimResult:
    """Multi-scale MEF-SSIM of `fused` against the exposure sequence `sources` (`mef_ms_ssim.m`).

    `sources` holds K >= 2 images of one size and `fused` one more; each is converted by
    `to_mef_gray` (float RGB in [0, 1] as (1, 3, H, W)/(3, H, W), uint8 RGB (H, W, 3), or a 2-D
    gray image on 0..255). A (K, 3, H, W) tensor or (K, H, W) gray stack also works as `sources`.
    Raises ValueError for fewer than 2 sources or mismatched shapes. The score is at most 1 (the
    ideal) and does not depend on the order of the sources; it is -inf when min(H, W) < 44, as in
    MATLAB. A negative per-scale value (a fusion unrelated to its sources) gives a nan score where
    MATLAB's would be complex. Computed in float64 on the device of `fused` when it is a tensor
    (else of the first tensor source, else the CPU); for batches use `mef_ms_ssim_batch`.
    """
    grays = [to_mef_gray(image) for image in sources]
    fused_gray = to_mef_gray(fused)
    if len(grays) < 2:
        raise ValueError(f"MEF-SSIM needs at least 2 source exposures, got {len(grays)}")
    shapes = {g.shape for g in grays}
    if len(shapes) != 1:
        raise ValueError(f"source images differ in size: {[g.shape for g in grays]}")
    stack = np.stack(grays)
    _check_shapes(stack, fused_gray)
    if min(fused_gray.shape) < MIN_SIDE:
        return MefSsimResult(score=-math.inf, per_scale=())

    device = _device_of(fused, *(sources if isinstance(sources, Sequence) else [sources]))
    gray = _as_float64(np.concatenate([stack, fused_gray[None]])[None], device)
    per_scale = [float(q) for q in _per_scale(gray)[0].cpu()]
    with np.errstate(invalid="ignore"):
        score = float(np.prod(np.power(per_scale, SCALE_WEIGHTS)))
    return MefSsimResult(score=score, per_scale=tuple(per_scale))
