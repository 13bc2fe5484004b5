"""MEF-Net: Deep Guided Learning for Fast Multi-Exposure Image Fusion (Ma et al., IEEE TIP 29, 2020).

Re-implementation of makedede/MEFNet (HEAD d2b87b4): `e2emef.py` (`E2EMEF`, `AdaptiveNorm`,
`build_lr_net`), `guided_filter_pytorch/` (`FastGuidedFilter`, `BoxFilter`), the colour handling
of `batch_transformers.py` and `TrainModel.py` (`Trainer.eval`), and the training objective of
`mefssim.py` (`MEF_MSSSIM(is_lum=True)`). The parameter names are the official ones, so the
released `checkpoint/MEFNet_release.pt` (a training checkpoint whose `state_dict` holds the network)
loads strictly.

The method as the official code computes it (the paper's numbering is not cited here, not having
been checked), for a sequence of K exposures:

1. **Low-resolution weight prediction** (`build_lr_net`): the Y channel of each exposure, downsampled
   so that its shorter side is 128 pixels, goes through a small fully convolutional network: a
   3x3 convolution (1 -> 24 channels), four 3x3 convolutions with dilations 2, 4, 8, 16 and one
   with dilation 1 (24 -> 24), each followed by the adaptive normalisation
   `AN(x) = w_0 x + w_1 IN(x)` (`AdaptiveNorm`) and LeakyReLU(0.2), and a 1x1 convolution to one
   weight map per exposure. Exposures are processed independently (they form the batch).
2. **Guided upsampling** (`FastGuidedFilter`, radius 1, eps 1e-4): a guided filter fitted at low
   resolution, with the exposure's LR Y as the guide and its LR weight map as the input; its linear
   coefficients (A, b) are bilinearly upsampled and applied to the full-resolution Y:
   `W = up(A) * Y_hr + up(b)`.
3. **Weighted fusion**: `W_k <- (|W_k| + 1e-8) / sum_j (|W_j| + 1e-8)`, fused
   `Y = clamp(sum_k W_k Y_k, 0, 1)`.
4. **Chroma** (the official test code, not a network output): Cb and Cr are each fused with the
   weights `|C_k - 0.5| + 1e-8`, normalised over the exposures, and clamped to [0, 1]; the YCbCr
   result goes back to RGB with the full-range (JPEG / BT.601) formulas of `batch_transformers.py`.

Inference protocol of the official test code (`Main.py --train False`, `Trainer.eval`), which
`MEFNet.fuse` reproduces:

- images are read as 8-bit RGB (PIL) and converted with `ToTensor` (/255), then to YCbCr with
  Y = 0.299 R + 0.587 G + 0.114 B, Cb = 0.5 - 0.168736 R - 0.331264 G + 0.5 B,
  Cr = 0.5 + 0.5 R - 0.418688 G - 0.081312 B;
- the low-resolution input is the 8-bit RGB image resized with PIL's bilinear filter (which is
  antialiased: a triangle filter stretched by the downscaling factor, 22-bit fixed-point weights,
  an 8-bit result after each of the horizontal and vertical passes) so that the shorter side is
  `low_size` = 128 and the other `int(128 * long / short)` (torchvision `Resize(128)`); images
  smaller than that are upsampled. `pil_bilinear_resize` reproduces Pillow's 8-bit resize bit for
  bit (Pillow 4-12 for every size; Pillow 13, which runs the vertical pass first when the height
  shrinks much more than the width, for MEF-Net's aspect-preserving sizes), so the LR path sees the
  input quantised to 8 bits (round half up), as the official code does. The full-resolution path
  uses the input as given, which for 8-bit inputs is what `ToTensor` gives;
- the full-resolution input is used as it is when either side is at most 2048 pixels. The
  official `BatchTestResolution(2048)` shrinks images whose both sides exceed 2048 to a shorter
  side of 2048 and returns the fused image at that reduced size; `fuse` keeps the input size
  instead (the harness returns a fused image of the input's shape) and warns, so on such images
  our output is the full-resolution fusion, not the official reduced one. No benchmark image is
  that large;
- the order of the exposures does not matter (every step is symmetric in them; for two exposures
  the sums are bit-identical in either order);
- any size works, odd ones included: the LR input is resized to a fixed shorter side and the
  guided filter's coefficients are upsampled to the exact full-resolution size, so nothing is
  padded or cropped (the official code has no size constraint either, apart from LR sides > 3);
- the official code saves the RGB result clamped to [0, 1] through `torchvision.utils.save_image`;
  `fuse` returns the clamped float32 result (the harness quantises when it saves).

Parity: with the released weights, `fuse` is bit-identical (float32) to the official test code run
on CPU, on the 16 MEFB pairs and the tests' regression pair. MEFB (xingchenzhang/MEFB) ran the
official code on its pairs; our outputs match its published `fused_MEFNet` images to 66-82 dB PSNR
on 15 of the 16 scenes of ../shared/data/mefb, and to 47.5 dB on Sky, whose MEFB result was made
from other (apparently JPEG-coded) versions of the inputs (tests/test_mefnet.py has the table and the
evidence).

Protocols (`cfanet.protocols`):

- "exact" (default): the clamped float32 result, rounded half up by the harness. MEFB's published
  MEF-Net images follow rounding (tests/test_mefnet.py), so this is the protocol that reproduces
  them;
- "official": the release test code bit for bit: one sequence per forward pass and
  `_save_image` through torchvision 0.2.1's `save_image` (`mul(255).clamp(0, 255).byte()`), which
  truncates: about half the values one level below "exact". An image whose both sides exceed 2048
  is refused (the script would shrink it and return the fused image at the reduced size, which
  the harness cannot score against the full-size reference).

`MEFNetLoss` is MEF-Net's training objective: the official `mefssim.MEF_MSSSIM` with `is_lum=True`.
Despite its name it is not the MEF-SSIM index of Ma et al. 2015 (cfanet.metrics.mef_ssim, the
metric MEFB and the papers report); reference/algorithms.md section 2.4 lists the differences.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.mef.base import check_pair
from cfanet.adapter import DeepMethod
from cfanet.methods import register_method
from cfanet.protocols import EXACT, OFFICIAL, as_unit, levels_truncated
from cfanet.checkpoint import check_state_dict, read_checkpoint, unwrap_state_dict

METHOD = "MEF-Net"

# Added to |W| before normalising over exposures (official `e2emef.EPS`, also used for the chroma).
EPS = 1e-8
# Shorter side of the low-resolution input (official `--low_size`, torchvision `Resize(128)`).
LOW_SIZE = 128
# The official test code shrinks images whose both sides exceed this (`BatchTestResolution(2048)`).
OFFICIAL_TEST_LIMIT = 2048
# PIL's fixed-point precision for 8-bit resampling (`Resample.c`: 32 - 8 - 2).
PIL_PRECISION_BITS = 22


# -- colour (batch_transformers.py) ---------------------------------------------------------------

def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """RGB (..., 3, H, W) in [0, 1] -> full-range YCbCr (..., 3, H, W) as the official
    `BatchRGBToYCbCr` (same expression order, so the same float32 rounding)."""
    r, g, b = rgb[..., 0, :, :], rgb[..., 1, :, :], rgb[..., 2, :, :]
    return torch.stack((0. / 256. + r * 0.299000 + g * 0.587000 + b * 0.114000,
                        128. / 256. - r * 0.168736 - g * 0.331264 + b * 0.500000,
                        128. / 256. + r * 0.500000 - g * 0.418688 - b * 0.081312), dim=-3)


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """Full-range YCbCr (..., 3, H, W) -> RGB, not clamped (official `YCbCrToRGB`)."""
    y, cb, cr = ycbcr[..., 0, :, :], ycbcr[..., 1, :, :], ycbcr[..., 2, :, :]
    return torch.stack((y + (cr - 128 / 256.) * 1.402,
                        y - (cb - 128 / 256.) * 0.344136 - (cr - 128 / 256.) * 0.714136,
                        y + (cb - 128 / 256.) * 1.772), dim=-3)


def fuse_chroma(chroma: torch.Tensor) -> torch.Tensor:
    """One chroma plane of K exposures (N, K, H, W) -> fused plane (N, 1, H, W) in [0, 1].

    Weights |C_k - 0.5| + 1e-8 normalised over the exposures: the more saturated colour wins
    (official `Trainer.eval`).
    """
    weights = torch.abs(chroma - 0.5) + EPS
    weights = weights / torch.sum(weights, dim=1, keepdim=True)
    return torch.sum(weights * chroma, dim=1, keepdim=True).clamp(0, 1)


# -- the low-resolution input: PIL's bilinear resize, bit for bit -----------------------------------

def low_resolution_size(height: int, width: int, low_size: int = LOW_SIZE) -> tuple[int, int]:
    """(h, w) of the LR input: shorter side `low_size`, the other `int(low_size * long / short)`
    (torchvision `Resize(int)`, identical in torchvision 0.2.1 and today)."""
    if width <= height:
        return int(low_size * height / width), low_size
    return low_size, int(low_size * width / height)


@lru_cache(maxsize=64)
def _pil_bilinear_weights(in_size: int, out_size: int) -> np.ndarray:
    """PIL's fixed-point bilinear weights as a dense (out_size, in_size) integer matrix.

    `precompute_coeffs` + `normalize_coeffs_8bpc` of Pillow's `Resample.c`: a triangle filter of
    support 1 stretched by the downscaling factor, taps from (int)(center -/+ support + 0.5),
    normalised in double, then scaled by 2^22 and rounded half away from zero (C `(int)` casts).
    """
    # Plain Python floats, in the C code's order of operations (a sequential sum, division by
    # the sum, multiplication by 1 / filterscale), so that every weight rounds as in PIL.
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    inverse = 1.0 / filterscale
    one = float(1 << PIL_PRECISION_BITS)
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        taps = [max(0.0, 1.0 - abs((x + xmin - center + 0.5) * inverse)) for x in range(xmax)]
        total = 0.0
        for tap in taps:
            total += tap
        for x, tap in enumerate(taps):
            value = (tap / total if total != 0.0 else tap) * one
            matrix[xx, xmin + x] = math.trunc(value - 0.5 if value < 0 else value + 0.5)
    return matrix


def _pil_pass(x: torch.Tensor, weights: np.ndarray) -> torch.Tensor:
    """One 8-bit pass of PIL's resampling along the last axis; float64 holds the integers exactly."""
    matrix = torch.from_numpy(weights).to(x.device)
    accumulated = x @ matrix.T + float(1 << (PIL_PRECISION_BITS - 1))
    # clip8: >> PRECISION_BITS, saturated to 0..255.
    return torch.floor(accumulated / float(1 << PIL_PRECISION_BITS)).clamp_(0, 255)


def pil_bilinear_resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """8-bit images (..., H, W) with integer values 0..255 (any float dtype) -> (..., h, w), float64
    integer values: `PIL.Image.resize((w, h), Image.BILINEAR)` on 8-bit data, bit for bit.

    Horizontal pass first, each pass rounded and clipped to 8 bits; an axis whose size does not
    change is not resampled, as in PIL. Runs on the input's device.
    """
    out_h, out_w = size
    x = image.to(torch.float64)
    if x.shape[-1] != out_w:
        x = _pil_pass(x, _pil_bilinear_weights(x.shape[-1], out_w))
    if x.shape[-2] != out_h:
        x = _pil_pass(x.transpose(-1, -2), _pil_bilinear_weights(x.shape[-2], out_h)).transpose(-1, -2)
    return x


def official_low_resolution(rgb: torch.Tensor, low_size: int = LOW_SIZE) -> torch.Tensor:
    """float RGB (..., 3, H, W) in [0, 1] -> the official LR RGB (..., 3, h, w), float32 in [0, 1]:
    quantised to 8 bits (round half up), PIL-bilinear resized to a shorter side of `low_size`,
    divided by 255 (`ToTensor`)."""
    levels = torch.floor(rgb.to(torch.float64).clamp(0, 1) * 255 + 0.5)
    small = pil_bilinear_resize(levels, low_resolution_size(rgb.shape[-2], rgb.shape[-1], low_size))
    return small.to(torch.float32).div(255)


# -- the network (e2emef.py, guided_filter_pytorch/) -------------------------------------------------

class AdaptiveNorm(nn.Module):
    """AN(x) = w_0 x + w_1 IN(x), IN an affine instance normalisation (official `AdaptiveNorm`;
    initialised to the identity: w_0 = 1, w_1 = 0)."""

    def __init__(self, n: int):
        super().__init__()
        self.w_0 = nn.Parameter(torch.tensor([1.0]))
        self.w_1 = nn.Parameter(torch.tensor([0.0]))
        self.in_norm = nn.InstanceNorm2d(n, affine=True, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_0 * x + self.w_1 * self.in_norm(x)


def build_lr_net(width: int = 24, layer: int = 5) -> nn.Sequential:
    """The low-resolution weight network (official `build_lr_net`), as a Sequential whose indices
    give the official entry names `lr.0`, `lr.1`, ... (conv, norm, LeakyReLU per block).

    Blocks: 3x3 conv 1 -> width (dilation 1); `layer - 1` 3x3 convs with dilations 2, 4, ...,
    2^(layer-1); one more 3x3 conv (dilation 1); then a 1x1 conv to one channel (the only bias).
    """
    def block(in_channels: int, dilation: int) -> list[nn.Module]:
        return [nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=dilation, dilation=dilation, bias=False),
                AdaptiveNorm(width), nn.LeakyReLU(0.2, inplace=True)]

    layers = block(1, 1)
    for level in range(1, layer):
        layers += block(width, 2 ** level)
    layers += block(width, 1)
    layers.append(nn.Conv2d(width, 1, kernel_size=1, stride=1, padding=0, dilation=1))
    return nn.Sequential(*layers)


def init_official_weights(network: nn.Module) -> nn.Module:
    """The official training initialisation (`weights_init_identity`): Xavier-uniform convolution
    weights, instance-norm scale 1 and shift 0; the last convolution's bias keeps PyTorch's default.
    Applied in module order after construction, as the official code does, so that a given seed
    gives the official module's weights."""
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.xavier_uniform_(module.weight)
        elif isinstance(module, nn.InstanceNorm2d):
            nn.init.constant_(module.weight, 1.0)
            nn.init.constant_(module.bias, 0.0)
    return network


def box_filter(x: torch.Tensor, r: int) -> torch.Tensor:
    """Sums over (2r+1)^2 windows clipped at the border, by cumulative sums along H then W
    (official `BoxFilter`; the same cumsum-and-difference arithmetic, hence the same rounding)."""
    def diff(cumulative: torch.Tensor, dim: int) -> torch.Tensor:
        n = cumulative.shape[dim]
        left = cumulative.narrow(dim, r, r + 1)
        middle = cumulative.narrow(dim, 2 * r + 1, n - 2 * r - 1) - cumulative.narrow(dim, 0, n - 2 * r - 1)
        right = cumulative.narrow(dim, n - 1, 1) - cumulative.narrow(dim, n - 2 * r - 1, r)
        return torch.cat([left, middle, right], dim=dim)

    return diff(diff(x.cumsum(dim=2), 2).cumsum(dim=3), 3)


class FastGuidedFilter(nn.Module):
    """Fast guided filter (Wu et al., CVPR 2018; official `FastGuidedFilter`).

    `forward(lr_x, lr_y, hr_x)`: guide `lr_x` and input `lr_y` at low resolution (B, C, h, w),
    guide `hr_x` at full resolution (B, C, H, W) -> (B, C, H, W): the local linear model
    y = A x + b fitted on (2r+1)^2 windows at low resolution, A and b bilinearly upsampled
    (align_corners=False, the `F.upsample` default since PyTorch 0.4) and applied to `hr_x`.
    """

    def __init__(self, r: int, eps: float = 1e-8):
        super().__init__()
        self.r, self.eps = r, eps

    def forward(self, lr_x: torch.Tensor, lr_y: torch.Tensor, hr_x: torch.Tensor) -> torch.Tensor:
        h, w = lr_x.shape[-2:]
        if h <= 2 * self.r + 1 or w <= 2 * self.r + 1:
            raise ValueError(f"{METHOD}: the low-resolution input must be larger than {2 * self.r + 1} pixels "
                             f"on each side, got {h}x{w}")
        count = box_filter(lr_x.new_ones((1, 1, h, w)), self.r)
        mean_x = box_filter(lr_x, self.r) / count
        mean_y = box_filter(lr_y, self.r) / count
        cov_xy = box_filter(lr_x * lr_y, self.r) / count - mean_x * mean_y
        var_x = box_filter(lr_x * lr_x, self.r) / count - mean_x * mean_x
        a = cov_xy / (var_x + self.eps)
        b = mean_y - a * mean_x
        size = tuple(hr_x.shape[-2:])
        mean_a = F.interpolate(a, size, mode="bilinear", align_corners=False)
        mean_b = F.interpolate(b, size, mode="bilinear", align_corners=False)
        return mean_a * hr_x + mean_b


class MEFNetwork(nn.Module):
    """The MEF-Net network (official `E2EMEF` with `is_guided=True`), batched over sequences.

    `forward(y_lr, y_hr)`: Y channels of N sequences of K exposures, (N, K, h, w) at low and
    (N, K, H, W) at full resolution, in [0, 1] -> (fused Y (N, 1, H, W) clamped to [0, 1],
    normalised weights (N, K, H, W)). The official module takes one sequence shaped (K, 1, ., .);
    here the N*K exposures form the convolutional batch, which changes nothing (instance
    normalisation and the guided filter work per image).
    """

    def __init__(self, width: int = 24, layer: int = 5, radius: int = 1, eps: float = 1e-4):
        super().__init__()
        self.lr = build_lr_net(width=width, layer=layer)
        self.gf = FastGuidedFilter(radius, eps)

    def forward(self, y_lr: torch.Tensor, y_hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, k = y_hr.shape[:2]
        x_lr = y_lr.reshape(n * k, 1, *y_lr.shape[-2:])
        x_hr = y_hr.reshape(n * k, 1, *y_hr.shape[-2:])
        w_lr = self.lr(x_lr)
        w_hr = torch.abs(self.gf(x_lr, w_lr, x_hr)).reshape(y_hr.shape)
        w_hr = (w_hr + EPS) / torch.sum(w_hr + EPS, dim=1, keepdim=True)
        fused = torch.sum(w_hr * y_hr, dim=1, keepdim=True).clamp(0, 1)
        return fused, w_hr


# -- the training objective (mefssim.py) ------------------------------------------------------------

def _gaussian_window(window_size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The official `create_window(window_size, 1)`: a normalised Gaussian, sigma = window_size / 6."""
    sigma = window_size / 6.0
    g = torch.tensor([math.exp(-(x - window_size // 2) ** 2 / float(2 * sigma ** 2)) for x in range(window_size)])
    g = g / g.sum()
    return (g[:, None] @ g[None, :]).to(device=device, dtype=dtype)[None, None]


def mefnet_mef_ssim(fused: torch.Tensor, sources: torch.Tensor, window_size: int = 11, sigma_g: float = 0.2,
                    sigma_l: float = 0.2, c1: float = 0.01, c2: float = 0.03, is_lum: bool = True) -> torch.Tensor:
    """MEF-Net's differentiable "MEF-SSIM" (official `mefssim.MEF_MSSSIM`, one scale), per sequence.

    `fused` (N, 1, H, W) and `sources` (N, K, H, W): Y channels in [0, 1] -> scores (N,).
    Gaussian statistics (sigma = window / 6) with zero padding ('same' size). The structure term at
    each pixel is the contrast-structure similarity (2 s_xy + C2) / (s_x^2 + s_y^2 + C2) with the
    exposure of largest local variance. With `is_lum` (as the official training uses), a luminance
    term against the exposure-weighted mean luminance (global weights exp(-(mean_k - 0.5)^2 /
    (2 sigma_g^2)), local ones exp(-(mu_k - 0.5)^2 / (2 sigma_l^2))) multiplies in. As in the official
    multi-scale wrapper with beta = [1], the score is mean(luminance map) * mean(structure map).
    """
    if fused.dim() != 4 or fused.shape[1] != 1 or sources.dim() != 4 or sources.shape[0] != fused.shape[0] \
            or sources.shape[-2:] != fused.shape[-2:]:
        raise ValueError(f"{METHOD} loss: expected fused (N, 1, H, W) and sources (N, K, H, W), got "
                         f"{tuple(fused.shape)} and {tuple(sources.shape)}")
    n, k, h, w = sources.shape
    window = _gaussian_window(window_size, sources.dtype, sources.device)
    pad = window_size // 2
    C1, C2 = c1 ** 2, c2 ** 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x.reshape(-1, 1, h, w), window, padding=pad).reshape(x.shape)

    mu_y = blur(sources)
    sigma_y_sq = blur(sources * sources) - mu_y * mu_y
    mu_x = blur(fused)
    sigma_x_sq = blur(fused * fused) - mu_x * mu_x
    sigma_xy = blur(fused * sources) - mu_x * mu_y
    cs_seq = (2 * sigma_xy + C2) / (sigma_x_sq + sigma_y_sq + C2)
    # The structure of the exposure with the largest local variance (official `torch.max` + `gather`).
    patch_index = torch.argmax(sigma_y_sq, dim=1, keepdim=True)
    cs = torch.gather(cs_seq, 1, patch_index).mean(dim=(1, 2, 3))
    if not is_lum:
        return cs
    local = torch.exp(-((mu_y - 0.5) ** 2) / (2 * sigma_l ** 2))
    global_ = torch.exp(-((mu_y.mean(dim=(2, 3), keepdim=True) - 0.5) ** 2) / (2 * sigma_g ** 2))
    weights = global_ * local
    mu_ref = torch.sum(weights * mu_y, dim=1, keepdim=True) / torch.sum(weights, dim=1, keepdim=True)
    luminance = (2 * mu_x * mu_ref + C1) / (mu_x * mu_x + mu_ref * mu_ref + C1)
    return luminance.mean(dim=(1, 2, 3)) * cs


class MEFNetLoss(nn.Module):
    """MEF-Net's training loss: minus its differentiable MEF-SSIM (`mefnet_mef_ssim`), averaged over
    the batch. The official training minimises `-MEF_MSSSIM(is_lum=True)(O_hr, I_hr)` on the Y
    channels (fused (N, 1, H, W), exposures (N, K, H, W)). Not the MEF-SSIM metric of the tables."""

    def __init__(self, window_size: int = 11, sigma_g: float = 0.2, sigma_l: float = 0.2, c1: float = 0.01,
                 c2: float = 0.03, is_lum: bool = True):
        super().__init__()
        self.options = dict(window_size=window_size, sigma_g=sigma_g, sigma_l=sigma_l, c1=c1, c2=c2, is_lum=is_lum)

    def forward(self, fused: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        return -mefnet_mef_ssim(fused, sources, **self.options).mean()


# -- adapter ----------------------------------------------------------------------------------------

@register_method("mef", scale_specific=False, paper_order=3,
                 note="no tiling: its guided filter and weights are computed on the whole image")
class MEFNet(DeepMethod):
    """MEF-Net behind the harness convention: `fuse(over, under)` on float32 RGB (N, 3, H, W) in [0, 1].

    Runtime options: `device` ("cpu", "cuda", ...), `low_size` (shorter side of the LR input,
    official 128), `protocol` ("exact" or "official", see the module docstring). The network runs
    in fp32 (it is tiny; the full-resolution work is the guided filter's upsampling and the
    weighted sums).
    """

    name: ClassVar[str] = METHOD
    # Inference stays fp32: under autocast PSNR moves by up to 3.7 dB (bf16) / 0.2 dB (fp16) on the demo scenes (tests/test_autocast.py).
    autocast_dtypes: ClassVar[tuple[str, ...]] = ()
    protocols: ClassVar[tuple[str, ...]] = (EXACT, OFFICIAL)
    # Official: `E2EMEF()` defaults (`build_lr_net(layer=5, width=24)`, `FastGuidedFilter(1, 1e-4)`).
    # Small: the same code path with 8 channels, for the demo profile.
    configs: ClassVar[Mapping[str, Mapping]] = {
        "official": {"width": 24, "layer": 5, "radius": 1, "eps": 1e-4},
        "small": {"width": 8, "layer": 5, "radius": 1, "eps": 1e-4},
    }

    def __init__(self, network: MEFNetwork, *, device: str | torch.device = "cpu", low_size: int = LOW_SIZE,
                 protocol: str = EXACT, weights: str = "random init"):
        if not isinstance(low_size, int) or low_size < 2 * network.gf.r + 2:
            raise ValueError(f"{METHOD}: low_size must be an int > {2 * network.gf.r + 1}, got {low_size!r}")
        self._setup(network, device=device, tile=-1, protocol=protocol)
        self.low_size, self.weights = low_size, weights

    @classmethod
    def build_network(cls, **config) -> MEFNetwork:
        """The network with the official initialisation (seeded by `create`)."""
        return init_official_weights(MEFNetwork(**config))

    @classmethod
    def create(cls, size: str = "official", seed: int | None = 0, **runtime) -> "MEFNet":
        """A model of configuration `size` ("official" or "small") with seeded random weights."""
        config = cls.check_size(size)
        cls.seed(seed)
        return cls(cls.build_network(**config), **runtime)

    @classmethod
    def infer_config(cls, weights: Mapping[str, torch.Tensor]) -> dict:
        """The configuration a state dict was made with: the width from `lr.0.weight`, the number of
        dilated blocks from the number of convolutions; the official one when the file does not tell."""
        config = dict(cls.configs["official"])
        first = weights.get("lr.0.weight")
        if isinstance(first, torch.Tensor) and first.dim() == 4:
            config["width"] = int(first.shape[0])
            convs = sum(1 for key, value in weights.items()
                        if key.startswith("lr.") and key.endswith(".weight") and value.dim() == 4)
            config["layer"] = max(convs - 2, 1)
        return config

    @classmethod
    def from_checkpoint(cls, path: str | Path, key: str | None = None, **runtime) -> "MEFNet":
        """Load the official `MEFNet_release.pt` (or our own checkpoint) strictly.

        Raises `CheckpointMismatchError` naming the missing, unexpected and mis-shaped entries when
        the file holds another model's weights.
        """
        weights = unwrap_state_dict(read_checkpoint(path), key=key, source=str(path))
        network = MEFNetwork(**cls.infer_config(weights))
        check_state_dict(network.state_dict(), weights, source=str(path))
        network.load_state_dict(weights, strict=True)
        return cls(network, weights=str(path), **runtime)

    def _check_sequence(self, exposures: torch.Tensor) -> None:
        if not isinstance(exposures, torch.Tensor) or exposures.dim() != 5 or exposures.shape[2] != 3:
            shape = tuple(exposures.shape) if isinstance(exposures, torch.Tensor) else type(exposures).__name__
            raise ValueError(f"{METHOD}: expected exposures shaped (N, K, 3, H, W), got {shape}")
        if not exposures.is_floating_point():
            raise ValueError(f"{METHOD}: exposures must be float in [0, 1], got {exposures.dtype}")
        if exposures.shape[1] < 1 or exposures.shape[0] < 1 or min(exposures.shape[-2:]) < 1:
            raise ValueError(f"{METHOD}: empty input {tuple(exposures.shape)}")
        if not torch.isfinite(exposures).all():
            raise ValueError(f"{METHOD}: the exposures contain NaN or infinite values")

    @torch.no_grad()
    def fuse_sequence(self, exposures: torch.Tensor, return_weights: bool = False):
        """Fuse N sequences of K exposures (N, K, 3, H, W), float RGB [0, 1] -> (N, 3, H, W) float32 RGB
        in [0, 1] on the input's device (and the normalised Y weights (N, K, H, W) if asked)."""
        self._check_sequence(exposures)
        if min(exposures.shape[-2:]) > OFFICIAL_TEST_LIMIT:
            if self.protocol == OFFICIAL:
                raise ValueError(f"{METHOD}: the official protocol cannot fuse this {exposures.shape[-2]}x"
                                 f"{exposures.shape[-1]} input: the release test code shrinks images whose both "
                                 f"sides exceed {OFFICIAL_TEST_LIMIT} and returns a smaller fused image; use the "
                                 f"exact protocol")
            warnings.warn(f"{METHOD}: the official test code would shrink this {exposures.shape[-2]}x"
                          f"{exposures.shape[-1]} input to a shorter side of {OFFICIAL_TEST_LIMIT}; fusing at "
                          f"full resolution instead", UserWarning, stacklevel=2)
        x = exposures.to(self.device, torch.float32)
        if self.protocol == OFFICIAL:
            # the release code fuses one sequence per forward pass
            fused = [self._fused_rgb_and_weights(x[i:i + 1].contiguous()) for i in range(x.shape[0])]
            rgb = as_unit(levels_truncated(torch.cat([f[0] for f in fused])))
            weights = torch.cat([f[1] for f in fused])
        else:
            rgb, weights = self._fused_rgb_and_weights(x)
        rgb = rgb.to(exposures.device)
        return (rgb, weights.to(exposures.device)) if return_weights else rgb

    def _fused_rgb_and_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The fused RGB clamped to [0, 1] and the normalised Y weights of sequences (N, K, 3, H, W)."""
        ycbcr = rgb_to_ycbcr(x)                                               # (N, K, 3, H, W)
        y_lr = rgb_to_ycbcr(official_low_resolution(x, self.low_size))[:, :, 0]
        fused_y, weights = self.network(y_lr, ycbcr[:, :, 0])
        fused = torch.cat((fused_y, fuse_chroma(ycbcr[:, :, 1]), fuse_chroma(ycbcr[:, :, 2])), dim=1)
        return ycbcr_to_rgb(fused).clamp_(0, 1), weights

    def fuse(self, over: torch.Tensor, under: torch.Tensor) -> torch.Tensor:
        """Fuse an exposure pair: float32 RGB (N, 3, H, W) in [0, 1] each -> (N, 3, H, W) in [0, 1]."""
        check_pair(over, under, METHOD)
        return self.fuse_sequence(torch.stack((over, under), dim=1))

    def __repr__(self) -> str:
        width = self.network.lr[0].out_channels
        return f"MEFNet(width={width}, params={self.num_parameters}, weights={self.weights!r}, device={self.device})"
