"""Q^AB/F (Xydeas & Petrovic 2000): gradient-based edge preservation, exactly as MEFB computes it.

This reproduces MEFB's `metrics/metricsQabf.m` (and its inner `Qabf`) as `compute_metrics.m` calls
it, `metricsQabf(imread(A), imread(B), imread(fused))`, on 8-bit RGB images. The MATLAB conventions
followed (read off the code, and calibrated against MEFB's stored values to their 5 digits):

- **Colour: per channel, no gray conversion.** With three-channel sources and fused image, MEFB
  scores R, G and B separately (channel k of A and B against channel k of F) and returns the
  arithmetic mean of the three. The `rgb2gray` calls inside `Qabf` never run on this path, because
  each call gets a single channel. Channel order therefore does not matter.
- **Scale.** Each channel is `255 * im2double(double(uint8))`, i.e. the 0..255 values times 255
  (0..65025). Q^AB/F is scale-invariant except for one quirk (below), which this scale decides.
- **Gradients.** Sobel kernels h3 = [-1 0 1; -2 0 2; -1 0 1] (x) and h1 = [1 2 1; 0 0 0; -1 -2 -1]
  (y), applied with `conv2(p, h, 'same')`: true convolution (kernel rotated 180 degrees) with
  **zero padding**, so the one-pixel border sees strong artificial edges from the zero frame. This
  matters: a constant nonzero image has gradient only on its border. g = sqrt(x^2 + y^2).
- **Orientation.** a = atan(y / x), and a = pi/2 wherever x == 0 (including 0/0); no NaN and no
  atan2, so a lies in [-pi/2, pi/2]. The orientation agreement is A = 1 - |a_A - a_F| / (pi/2) with
  no wrap-around (orientations pi apart, e.g. -pi/2 + d and pi/2 - d, agree poorly).
- **Strength ratio quirk.** G = g_F / g_A if g_A > g_F, g_A / g_F if g_A < g_F, and **g_F itself**
  (not 1) if g_A == g_F. For equal nonzero gradients (at least 255 on this scale) this gives the
  saturated value Q_g = T_g instead of T_g / (1 + exp(k_g (1 - D_g))); where both are 0 the pixel has
  zero weight anyway.
- **Constants.** T_g = 0.9994, k_g = -15, D_g = 0.5; T_a = 0.9879, k_a = -22, D_a = 0.8 (L = 1, so
  the weights are the gradient strengths themselves):
  Q_g = T_g / (1 + exp(k_g (G - D_g))), Q_a = T_a / (1 + exp(k_a (A - D_a))), Q^XF = Q_g Q_a.
- **Normalisation.** Q = sum(Q^AF g_A + Q^BF g_B) / sum(g_A + g_B) over all pixels, border included.
  When both sources are zero in a channel this is 0/0 = NaN, as in MATLAB, and the mean over the
  channels is then NaN too.

The score is symmetric in the two sources (bit for bit) and lies in [0, `IDENTICAL_SCORE`]. When
the fused image equals both sources it reaches that maximum, T_g * T_a / (1 + exp(k_a (1 - D_a)))
= 0.9753328, because of the ratio quirk. The MATLAB per-pixel loops are replaced by whole-array numpy operations
in float64; on 8-bit input every gradient is an exact integer, so the branch decisions (x == 0,
g_A == g_F) are the same as MATLAB's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cfanet.metrics._inputs import ACCEPTED_RGB, as_uint8_rgb, is_tensor

__all__ = ["IDENTICAL_SCORE", "qabf", "qabf_channel", "sobel_gradients"]

# Model parameters of `Qabf` in metricsQabf.m (L = 1).
TG, KG, DG = 0.9994, -15.0, 0.5
TA, KA, DA = 0.9879, -22.0, 0.8
# Score when F == A == B (nonzero gradients): Q_g = T_g by the ratio quirk, A = 1.
IDENTICAL_SCORE = TG * TA / (1.0 + math.exp(KA * (1.0 - DA)))
# `255 * im2double(double(x))`: im2double leaves a double array unchanged.
_MATLAB_SCALE = 255.0


def sobel_gradients(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`conv2(p, h3, 'same')` and `conv2(p, h1, 'same')` of a 2-D float64 array, zero padded.

    Returns (x, y): x = left column minus right column (weights 1, 2, 1), y = bottom row minus top
    row, the result of MATLAB's true convolution with h3 = [-1 0 1; -2 0 2; -1 0 1] and
    h1 = [1 2 1; 0 0 0; -1 -2 -1].
    """
    p = np.pad(np.asarray(plane, dtype=np.float64), 1)
    # Vertical [1 2 1] smoothing, then horizontal difference (and the transpose for y).
    v = p[1:-1, :] * 2.0
    v += p[:-2, :]
    v += p[2:, :]
    x = v[:, :-2] - v[:, 2:]
    h = p[:, 1:-1] * 2.0
    h += p[:, :-2]
    h += p[:, 2:]
    y = h[2:, :] - h[:-2, :]
    return x, y


def _strength_orientation(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """g = sqrt(x^2 + y^2) and a = atan(y / x), with a = pi/2 where x == 0 (MATLAB's branch)."""
    x, y = sobel_gradients(plane)
    strength = x * x
    strength += y * y
    np.sqrt(strength, out=strength)  # correctly rounded: equal sums of squares give equal g
    nonzero = x != 0
    orientation = np.divide(y, x, out=np.empty_like(x), where=nonzero)
    np.arctan(orientation, out=orientation)
    np.copyto(orientation, np.pi / 2, where=~nonzero)
    return strength, orientation


def _edge_preservation(g_src, a_src, g_f, a_f) -> np.ndarray:
    """Q^XF per pixel: strength and orientation preservation of source X in F (MATLAB's loops).

    G = min/max of the two strengths, except g_F itself where they are equal (the MATLAB quirk).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.minimum(g_src, g_f)
        ratio /= np.maximum(g_src, g_f)
    np.copyto(ratio, g_f, where=g_src == g_f)
    # Q_g = T_g / (1 + exp(k_g (G - D_g)))
    ratio -= DG
    ratio *= KG
    q = np.exp(ratio, out=ratio)
    q += 1.0
    np.divide(TG, q, out=q)
    # Q_a = T_a / (1 + exp(k_a (A - D_a))) with A = 1 - |a_X - a_F| / (pi/2)
    agreement = np.subtract(a_src, a_f)
    np.abs(agreement, out=agreement)
    agreement /= np.pi / 2
    np.subtract(1.0, agreement, out=agreement)
    agreement -= DA
    agreement *= KA
    np.exp(agreement, out=agreement)
    agreement += 1.0
    np.divide(TA, agreement, out=agreement)
    q *= agreement
    return q


def qabf_channel(plane_a: np.ndarray, plane_b: np.ndarray, plane_f: np.ndarray) -> float:
    """MEFB's inner `Qabf(strA, strB, strF)` for one channel on the 0..255 scale (2-D, same shape).

    The planes are multiplied by 255 as MATLAB's `255 * im2double(double(x))` does. Returns NaN
    when both sources are all zero (0/0), as MATLAB does.
    """
    planes = [np.asarray(p, dtype=np.float64) for p in (plane_a, plane_b, plane_f)]
    if any(p.ndim != 2 for p in planes) or len({p.shape for p in planes}) != 1:
        raise ValueError(f"qabf_channel needs three 2-D planes of one shape, got {[p.shape for p in planes]}")
    (g_a, a_a), (g_b, a_b), (g_f, a_f) = (_strength_orientation(_MATLAB_SCALE * p) for p in planes)
    q_af = _edge_preservation(g_a, a_a, g_f, a_f)
    q_bf = _edge_preservation(g_b, a_b, g_f, a_f)
    numerator = float(np.sum(q_af * g_a + q_bf * g_b))
    denominator = float(np.sum(g_a + g_b))
    return numerator / denominator if denominator else math.nan


def _one_rgb(image, role: str) -> np.ndarray:
    try:
        batch = as_uint8_rgb(image)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{role}: {exc}") from None
    if batch.shape[0] != 1:
        raise ValueError(f"{role}: expected one image, got a batch of {batch.shape[0]}; accepted: {ACCEPTED_RGB}")
    return batch[0]


def qabf(sources: Sequence, fused) -> float:
    """Q^AB/F of `fused` against the two source exposures `sources` = (A, B), as MEFB computes it.

    Each image is an RGB image of one size: a float torch tensor or float numpy array in [0, 1]
    shaped (1, 3, H, W) or (3, H, W), quantised to 8 bits first exactly as `write_image` saves it
    (clip, round half up), or a uint8 numpy array (H, W, 3) as `read_image_array` returns.
    `sources` may also be one stacked array: float (2, 3, H, W) or uint8 (2, H, W, 3).

    Returns the mean over R, G, B of the single-channel Q^AB/F (see the module docstring for the
    MATLAB conventions). Higher is better; it lies in [0, 0.9753328], the maximum
    (`IDENTICAL_SCORE`) reached when F equals both sources; NaN when both sources are black in some channel. Symmetric in A and B.
    Raises ValueError when there are not exactly two sources, for a shape that is not one RGB
    image, or when the sizes differ; TypeError for an unsupported dtype.
    """
    if is_tensor(sources) or isinstance(sources, np.ndarray):
        if sources.ndim != 4:
            raise ValueError(
                f"sources given as one array must stack 2 images, shaped (2, 3, H, W) (float) or (2, H, W, 3) "
                f"(uint8), got {tuple(sources.shape)}"
            )
    sources = list(sources)
    if len(sources) != 2:
        raise ValueError(f"Q^AB/F needs exactly 2 source images (A, B), got {len(sources)}")
    image_a, image_b = (_one_rgb(s, f"source {'AB'[i]}") for i, s in enumerate(sources))
    image_f = _one_rgb(fused, "fused image")
    sizes = {"source A": image_a.shape[1:], "source B": image_b.shape[1:], "fused image": image_f.shape[1:]}
    if len(set(sizes.values())) != 1:
        described = ", ".join(f"{name} {h}x{w}" for name, (h, w) in sizes.items())
        raise ValueError(f"Q^AB/F images differ in size (H x W): {described}")
    scores = [qabf_channel(image_a[c], image_b[c], image_f[c]) for c in range(3)]
    return float(np.mean(scores))
