"""MEF-SSIM (Ma, Zeng, Wang, TIP 2015) exactly as the official MATLAB `mef_ms_ssim.m` / `mef_ssim.m`.

This is the kedema.org code that MEFB ships (algorithms.md §2): gray images from MATLAB `rgb2gray`
on uint8, an adaptive exponent p = tan(pi R / 2) capped at 10 (not a fixed p = 4), the desired
patch built with an 11x11 box window and scored with an 11x11 Gaussian (sigma 1.5), 'valid'
windows only, C = (0.03 * 255)^2, three scales joined by 2x2 top-left-anchored mean downsampling.

MATLAB loops over pixels; here every per-patch vector quantity is rewritten with window sums of
products of the images (the fast exact formulation of algorithms.md §2.2), so one scale costs a
few separable 11-tap filters. It matches MEFB's stored values to their 5-digit precision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cfanet.color import rgb2gray_uint8
from cfanet.metrics._inputs import is_tensor, quantize_unit
from cfanet.metrics._window import BOX_TAPS, GAUSSIAN_TAPS, WINDOW, valid_filter

__all__ = ["MefSsimResult", "downsample", "mef_ms_ssim", "mef_ssim_map", "mef_ssim_single", "to_mef_gray"]

C = (0.03 * 255.0) ** 2  # 58.5225
EPS = np.finfo(np.float64).eps  # MATLAB eps
P_MAX = 10.0
ED_OFFSET = 0.001  # added to every signal strength in mef_ssim.m
_N2 = float(WINDOW * WINDOW)  # pixels per patch
# MS-SSIM's first three exponents, normalised by their sum (algorithms.md §2.3).
_RAW_WEIGHTS = (0.0448, 0.2856, 0.3001)
SCALE_WEIGHTS = tuple(w / sum(_RAW_WEIGHTS) for w in _RAW_WEIGHTS)
LEVELS = len(SCALE_WEIGHTS)
MIN_SIDE = WINDOW * 2 ** (LEVELS - 1)  # 44: below this mef_ms_ssim.m returns -Inf


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


def _check_shapes(sources: np.ndarray, fused: np.ndarray) -> None:
    if sources.ndim != 3 or sources.shape[0] < 2:
        raise ValueError(f"sources must be a (K, H, W) stack with K >= 2, got shape {sources.shape}")
    if fused.shape != sources.shape[1:]:
        raise ValueError(f"fused image shape {fused.shape} does not match source shape {sources.shape[1:]}")


def mef_ssim_map(sources_gray: np.ndarray, fused_gray: np.ndarray) -> np.ndarray:
    """Single-scale local quality map q of `mef_ssim.m` (algorithms.md §2.2 steps 1-7).

    `sources_gray` is (K, H, W) with K >= 2 and `fused_gray` is (H, W), gray on 0..255 (any real
    dtype). Returns float64 (H-10, W-10): one value per valid 11x11 patch centre.
    """
    x = np.asarray(sources_gray, dtype=np.float64)
    f = np.asarray(fused_gray, dtype=np.float64)
    _check_shapes(x, f)
    # Every statistic below is invariant to a common offset; centring halves the magnitudes and so
    # the cancellation in the moment differences. 128 keeps the values exactly representable.
    x = x - 128.0
    f = f - 128.0
    k_count = x.shape[0]
    pairs = [(k, l) for k in range(k_count) for l in range(k, k_count)]
    products = np.stack([x[k] * x[l] for k, l in pairs])

    # Step 1: box window sums -> centred sums sum((x_k - mu_k)(x_l - mu_l)) = n^2 cov_kl.
    box = valid_filter(np.concatenate([x, products]), BOX_TAPS)
    s1, s2 = box[:k_count], box[k_count:]
    mu = s1 / _N2
    cov = {}
    for index, (k, l) in enumerate(pairs):
        cov[k, l] = cov[l, k] = (_N2 * s2[index] - s1[k] * s1[l]) / _N2
    strength = np.sqrt(np.maximum(np.stack([cov[k, k] for k in range(k_count)]), 0.0))
    ed = strength + ED_OFFSET

    # Step 2: structural consistency R = (||sum_k (x_k - mu_k)|| + eps) / (sum_k ||x_k - mu_k|| + eps).
    sum_norm = np.sqrt(np.maximum(sum(cov[k, l] for k in range(k_count) for l in range(k_count)), 0.0))
    consistency = (sum_norm + EPS) / (strength.sum(axis=0) + EPS)
    consistency[consistency > 1] = 1 - EPS
    consistency[consistency < 0] = EPS

    # Steps 3-5: adaptive exponent, weights, desired contrast.
    p = np.minimum(np.tan(np.pi / 2 * consistency), P_MAX)
    weights = (ed / WINDOW) ** p + EPS
    weights /= weights.sum(axis=0)
    contrast = ed.max(axis=0)

    # Step 6: u = sum_k a_k (x_k - mu_k) with a_k = w_k / ed_k, and r = u * contrast / ||u||.
    a = weights / ed
    u_norm2 = sum(a[k] * a[l] * cov[k, l] for k in range(k_count) for l in range(k_count))

    # Step 7: Gaussian moments of r and f, from Gaussian window sums of the images and products.
    gauss = valid_filter(np.concatenate([x, f[None], products, x * f, (f * f)[None]]), GAUSSIAN_TAPS)
    g_x, g_f = gauss[:k_count], gauss[k_count]
    g_xx = {}
    for index, (k, l) in enumerate(pairs):
        g_xx[k, l] = g_xx[l, k] = gauss[k_count + 1 + index]
    g_xf = gauss[k_count + 1 + len(pairs) : -1]
    g_ff = gauss[-1]

    g_u = sum(a[k] * (g_x[k] - mu[k]) for k in range(k_count))
    g_uu = sum(
        a[k] * a[l] * (g_xx[k, l] - mu[l] * g_x[k] - mu[k] * g_x[l] + mu[k] * mu[l])
        for k in range(k_count)
        for l in range(k_count)
    )
    g_uf = sum(a[k] * (g_xf[k] - mu[k] * g_f) for k in range(k_count))

    # MATLAB leaves r = u (all zeros) when ||u|| = 0; scale 0 reproduces that.
    positive = u_norm2 > 0
    s = np.where(positive, contrast / np.sqrt(np.where(positive, u_norm2, 1.0)), 0.0)
    sigma_r2 = s * s * (g_uu - g_u * g_u)
    sigma_f2 = g_ff - g_f * g_f
    sigma_rf = s * (g_uf - g_u * g_f)
    return (2 * sigma_rf + C) / (sigma_r2 + sigma_f2 + C)


def mef_ssim_single(sources_gray: np.ndarray, fused_gray: np.ndarray) -> float:
    """Single-scale MEF-SSIM Q (`mef_ssim.m`): the mean of `mef_ssim_map` (§2.2 step 8).

    Same inputs as `mef_ssim_map`; returns a float <= 1 (1 up to ~1e-10 when F reproduces the desired patches).
    """
    return float(mef_ssim_map(sources_gray, fused_gray).mean())


def downsample(image: np.ndarray) -> np.ndarray:
    """2x2 mean with a top-left anchor and mirror padding at an odd last row/column (§2.3).

    (..., H, W) -> (..., ceil(H/2), ceil(W/2)) float64, not rounded: MATLAB's
    `imfilter(I, ones(2)/4, 'symmetric', 'same')` sampled at every 2nd pixel from the first.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.shape[-2] % 2:
        image = np.concatenate([image, image[..., -1:, :]], axis=-2)
    if image.shape[-1] % 2:
        image = np.concatenate([image, image[..., :, -1:]], axis=-1)
    return 0.25 * (image[..., 0::2, 0::2] + image[..., 1::2, 0::2] + image[..., 0::2, 1::2] + image[..., 1::2, 1::2])


def mef_ms_ssim(sources: Sequence, fused) -> MefSsimResult:
    """Multi-scale MEF-SSIM of `fused` against the exposure sequence `sources` (`mef_ms_ssim.m`).

    `sources` holds K >= 2 images of one size and `fused` one more; each is converted by
    `to_mef_gray` (float RGB in [0, 1] as (1, 3, H, W)/(3, H, W), uint8 RGB (H, W, 3), or a 2-D
    gray image on 0..255). A (K, 3, H, W) tensor or (K, H, W) gray stack also works as `sources`.
    Raises ValueError for fewer than 2 sources or mismatched shapes. The score is at most 1 (the
    ideal) and does not depend on the order of the sources; it is -inf when min(H, W) < 44, as in
    MATLAB. A negative per-scale value (a fusion unrelated to its sources) gives a nan score where
    MATLAB's would be complex.
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

    per_scale = []
    for level in range(LEVELS):
        if level:
            stack, fused_gray = downsample(stack), downsample(fused_gray)
        per_scale.append(mef_ssim_single(stack, fused_gray))
    with np.errstate(invalid="ignore"):
        score = float(np.prod(np.power(per_scale, SCALE_WEIGHTS)))
    return MefSsimResult(score=score, per_scale=tuple(per_scale))
