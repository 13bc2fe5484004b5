"""MATLAB-compatible bicubic `imresize`, and the LR inputs the SR field makes with it.

`imresize` reproduces MATLAB's `imresize(I, scale, 'bicubic')` (Image Processing Toolbox):

- cubic kernel with a = -0.5 (Keys); when shrinking with antialiasing on, the kernel is
  stretched to `kernel(scale * x) * scale` (support 4 / scale taps) and the weights of each output
  pixel are normalised to sum to 1;
- output size `ceil(scale * size)`; output pixel k (1-based) samples input coordinate
  `k / scale + 0.5 * (1 - 1 / scale)`;
- borders by symmetric index reflection (edge sample repeated: ... 2 1 | 1 2 3 ... n | n n-1 ...);
- separable: one axis after the other, the axis with the smaller scale first (MATLAB's
  `sort(scale)`, ties: rows first); arithmetic in float64 as MATLAB's double path.

`imresize_uint8` follows MATLAB for uint8 input: each axis pass is computed in double and its
result rounded half away from zero and saturated to uint8 before the next pass. This reproduces
real MATLAB output bit for bit (R2015b files of fatheral/matlab_imresize, and the LR images that
CF-Net's MATLAB script made); GNU Octave instead rounds once at the end (`rounding="once"`).
`make_lr_pair` is CF-Net's `Prepare_Data_HR_LR.m`: uint8 HR, `modcrop`,
`imresize(HR, 1/scale, 'bicubic')`.

Layouts: torch tensors are channels-first `(..., H, W)`; numpy arrays are MATLAB/OpenCV style
`(H, W)` or `(H, W, C)`. Nothing here reads or writes files.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from cfanet.images import quantize

_KERNEL_WIDTH = 4.0  # taps of the unstretched cubic kernel


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys cubic kernel, a = -0.5, written as MATLAB's `cubic` in imresize.m."""
    absx = x.abs()
    absx2 = absx * absx
    absx3 = absx2 * absx
    inner = (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1)
    outer = (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * ((absx > 1) & (absx <= 2))
    return inner + outer


def contributions(
    in_length: int, out_length: int, scale: float, antialias: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sampling taps of one axis: `(indices, weights)`, both shaped (out_length, taps).

    `indices` are 0-based int64 into the input axis, already reflected at the borders; `weights`
    are float64 and each row sums to 1. Output k is `sum_p weights[k, p] * in[indices[k, p]]`.
    Tap columns whose weight is zero for every output are dropped, as MATLAB does.
    """
    stretch = scale < 1 and antialias
    width = _KERNEL_WIDTH / scale if stretch else _KERNEL_WIDTH
    x = torch.arange(1, out_length + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # input coordinate (1-based) of output pixel x
    left = torch.floor(u - width / 2)
    taps = math.ceil(width) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]  # 1-based
    distance = u[:, None] - indices
    weights = scale * _cubic(scale * distance) if stretch else _cubic(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Symmetric reflection: 1-based i maps through [1..n, n..1] repeated.
    mirror = torch.cat([torch.arange(in_length), torch.arange(in_length - 1, -1, -1)])
    indices = mirror[torch.remainder(indices.long() - 1, 2 * in_length)]
    keep = (weights != 0).any(dim=0)
    return indices[:, keep].contiguous(), weights[:, keep].contiguous()


def _resize_axis(x: torch.Tensor, dim: int, indices: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Apply one axis's taps to float64 `x` along `dim`; one gather per tap, summed in tap order."""
    if dim == x.dim() - 1:  # gathering whole rows is much faster than gathering columns
        rows_first = _resize_axis(x.transpose(-1, -2).contiguous(), dim - 1, indices, weights)
        return rows_first.transpose(-1, -2).contiguous()
    shape = [1] * x.dim()
    shape[dim] = weights.shape[0]
    indices = indices.to(x.device)
    weights = weights.to(x.device)
    out = x.index_select(dim, indices[:, 0]).mul_(weights[:, 0].view(shape))
    for p in range(1, weights.shape[1]):  # a handful of taps (4 / scale + 2), not pixels
        out.add_(x.index_select(dim, indices[:, p]).mul_(weights[:, p].view(shape)))
    return out


def _plan(
    in_size: tuple[int, int], scale: float | tuple[float, float] | None, size: tuple[int, int] | None
) -> tuple[tuple[float, float], tuple[int, int]]:
    """(scale_h, scale_w), (out_h, out_w) from exactly one of `scale` and `size`, as MATLAB."""
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale and size")
    if size is not None:
        out = (int(size[0]), int(size[1]))
        if min(out) < 1:
            raise ValueError(f"output size must be positive, got {size}")
        return (out[0] / in_size[0], out[1] / in_size[1]), out
    scales = (float(scale[0]), float(scale[1])) if isinstance(scale, (tuple, list)) else (float(scale),) * 2
    if min(scales) <= 0 or not all(math.isfinite(s) for s in scales):
        raise ValueError(f"scale must be positive and finite, got {scale}")
    return scales, (math.ceil(scales[0] * in_size[0]), math.ceil(scales[1] * in_size[1]))


def _round_saturate_uint8(x: torch.Tensor) -> torch.Tensor:
    # MATLAB's double -> uint8: round half away from zero, then saturate; values below zero all
    # land on 0, so floor(x + 0.5) is the same thing here.
    return torch.floor(x + 0.5).clamp_(0, 255)


def _resize_hw(
    x: torch.Tensor,
    scale: float | tuple[float, float] | None,
    size: tuple[int, int] | None,
    antialias: bool,
    round_each_pass: bool,
) -> torch.Tensor:
    """Resize the last two dims of a float64 tensor; optionally round to uint8 levels per pass."""
    if x.dim() < 2:
        raise ValueError(f"expected at least 2 dims (..., H, W), got shape {tuple(x.shape)}")
    in_size = (x.shape[-2], x.shape[-1])
    if min(in_size) < 1:
        raise ValueError(f"cannot resize an empty image of shape {tuple(x.shape)}")
    scales, out_size = _plan(in_size, scale, size)
    order = (0, 1) if scales[0] <= scales[1] else (1, 0)  # MATLAB: smaller scale first
    for axis in order:
        if scales[axis] == 1 and out_size[axis] == in_size[axis]:
            continue  # the cubic taps would be exactly [1], an identity
        indices, weights = contributions(in_size[axis], out_size[axis], scales[axis], antialias)
        x = _resize_axis(x, x.dim() - 2 + axis, indices, weights)
        if round_each_pass:
            x = _round_saturate_uint8(x)
    return x


def _to_chw_tensor(x: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, bool]:
    """Tensor view with H, W as the last two dims; numpy (H, W[, C]) is moved to (C, H, W)."""
    if isinstance(x, torch.Tensor):
        return x, False
    array = np.ascontiguousarray(x)
    if not array.flags.writeable:  # torch.from_numpy warns on read-only memory
        array = array.copy()
    if array.ndim == 2:
        return torch.from_numpy(array), True
    if array.ndim == 3:
        return torch.from_numpy(array).permute(2, 0, 1), True
    raise ValueError(f"numpy images must be (H, W) or (H, W, C), got shape {array.shape}")


def _from_chw_tensor(y: torch.Tensor, was_numpy: bool) -> torch.Tensor | np.ndarray:
    if not was_numpy:
        return y
    y = y.cpu()
    return np.ascontiguousarray((y.permute(1, 2, 0) if y.dim() == 3 else y).numpy())


def imresize(
    x: torch.Tensor | np.ndarray,
    scale: float | tuple[float, float] | None = None,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
) -> torch.Tensor | np.ndarray:
    """MATLAB `imresize(x, scale, 'bicubic')` (or `imresize(x, [h w], 'bicubic')`) for floats.

    `x`: float tensor `(..., H, W)` (e.g. (N, C, H, W) or (C, H, W)) on any device, or a float
    numpy array `(H, W)` / `(H, W, C)`. Give exactly one of `scale` (a number or (scale_h,
    scale_w); output `ceil(scale * H) x ceil(scale * W)`) or `size` = (out_h, out_w).
    Computed in float64; returns the input's type, layout, device and dtype. Values are not
    clipped: bicubic overshoots, so [0, 1] inputs can give slightly negative or > 1 outputs,
    exactly as MATLAB's double path does.
    """
    tensor, was_numpy = _to_chw_tensor(x)
    if not tensor.is_floating_point():
        raise TypeError(f"imresize takes floating-point images, got {tensor.dtype}; use imresize_uint8 for uint8")
    y = _resize_hw(tensor.to(torch.float64), scale, size, antialias, round_each_pass=False)
    return _from_chw_tensor(y.to(tensor.dtype), was_numpy)


def imresize_uint8(
    x: torch.Tensor | np.ndarray,
    scale: float | tuple[float, float] | None = None,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
    rounding: Literal["per_pass", "once"] = "per_pass",
) -> torch.Tensor | np.ndarray:
    """`imresize` for a uint8 image: uint8 in, uint8 out, same layouts and arguments.

    `rounding="per_pass"` (default) is MATLAB: each axis pass is computed in float64, then rounded
    half away from zero and saturated to [0, 255] before the next pass (MATLAB's `imresizemex`
    returns the class of its input). `rounding="once"` resizes both axes in float64 and rounds
    once at the end, which is what GNU Octave's `imresize` and float pipelines followed by
    `round` do. The two differ by one level here and there, and by more where the first pass
    overshoots past 0 or 255 (high-contrast edges), because MATLAB clips that overshoot.
    """
    if rounding not in ("per_pass", "once"):
        raise ValueError(f"rounding must be 'per_pass' or 'once', got {rounding!r}")
    tensor, was_numpy = _to_chw_tensor(x)
    if tensor.dtype != torch.uint8:
        raise TypeError(f"imresize_uint8 takes uint8 images, got {tensor.dtype}")
    y = _resize_hw(tensor.to(torch.float64), scale, size, antialias, round_each_pass=rounding == "per_pass")
    if rounding == "once":
        y = _round_saturate_uint8(y)
    return _from_chw_tensor(y.to(torch.uint8), was_numpy)


def modcrop(x: torch.Tensor | np.ndarray, scale: int) -> torch.Tensor | np.ndarray:
    """Crop height and width down to multiples of `scale`, keeping the top-left corner.

    Tensors are `(..., H, W)`; numpy arrays are `(H, W)` or `(H, W, C)` (MATLAB's `modcrop`).
    Returns a view of the same type and dtype.
    """
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    scale = int(scale)
    if isinstance(x, torch.Tensor):
        h, w = x.shape[-2], x.shape[-1]
        return x[..., : h - h % scale, : w - w % scale]
    if x.ndim not in (2, 3):
        raise ValueError(f"numpy images must be (H, W) or (H, W, C), got shape {x.shape}")
    h, w = x.shape[0], x.shape[1]
    return x[: h - h % scale, : w - w % scale]


def make_lr_pair(hr: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CF-Net's `Prepare_Data_HR_LR.m`: the (HR, LR) pair an SR model is trained/tested on.

    `hr`: float tensor (N, C, H, W) in [0, 1]. It is quantised to uint8 (round half up, as
    `im2uint8`), modcropped to multiples of `scale`, and resized by `1 / scale` with MATLAB's
    uint8 bicubic imresize (on the CPU). Returns float32 tensors on `hr`'s device, values k / 255:
    `hr_cropped` (N, C, H - H % scale, W - W % scale) and `lr` (N, C, H // scale, W // scale).
    """
    if hr.dim() != 4:
        raise ValueError(f"expected hr shaped (N, C, H, W), got {tuple(hr.shape)}")
    cropped = modcrop(torch.from_numpy(quantize(hr, 8)), scale)
    if min(cropped.shape[-2:]) < scale:
        raise ValueError(f"image {tuple(hr.shape[-2:])} is smaller than the scale {scale}")
    lr = imresize_uint8(cropped, scale=1 / scale)
    return (cropped.float() / 255).to(hr.device), (lr.float() / 255).to(hr.device)


def make_lr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The LR half of `make_lr_pair`: float32 (N, C, H // scale, W // scale) in [0, 1]."""
    return make_lr_pair(hr, scale)[1]
