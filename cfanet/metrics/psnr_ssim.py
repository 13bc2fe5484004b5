"""PSNR and SSIM under a named, printed convention (algorithms.md §3).

A paper's numbers depend on colour space, border crop and SSIM variant, and CF-Net never said
which it used (§3.1), so every score here is computed under an explicit `Convention`:

- `paper`: RGB, no crop. PSNR from one MSE over the three channels of the 8-bit images; SSIM is the
  mean over R, G, B of the 11x11 Gaussian (sigma 1.5) SSIM. This reproduces the PSNR/SSIM logged by
  published SICE methods (the §3.1b calibration) and is CF-Net's own validation PSNR.
- `sr`: BasicSR's SR convention: crop `scale` pixels from every side, then score the Y channel of
  MATLAB `rgb2ycbcr` (BT.601, 16..235, unrounded) with the same formulas.

Both use data range 255, 'valid' SSIM windows (no padding), C1 = (0.01*255)^2, C2 = (0.03*255)^2.
Inputs are scored as 8-bit images: float input in [0, 1] is first quantised exactly as an 8-bit
save would (clip, round half up), because the protocol scores the saved PNGs. Accepted forms: see
`cfanet.metrics._inputs.ACCEPTED_RGB`.

Computation is in torch on the device of the input (CPU or CUDA):

- PSNR on RGB: the squared differences of 8-bit values are summed in int64, so the MSE is exact
  (one rounding, in the division by the pixel count). On Y: float64, as the Y values are not integers.
- SSIM: float64 throughout. The Gaussian window moments are differences of numbers up to 255^2
  (E[a^2] - mu^2) that can be ~1e-2, so float32's 24 bits would lose most of them; the map formula
  after them is a handful of operations, not worth a narrower type.

`psnr_batch` and `ssim_batch` score N pairs of equal-size images in one pass and return tensors on
the inputs' device; `psnr` and `ssim` keep their numpy-friendly forms.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

import numpy as np

from cfanet.color import rgb2y
from cfanet.metrics._inputs import as_uint8_rgb, eight_bit_tensor, is_tensor
from cfanet.metrics._window import WINDOW

if TYPE_CHECKING:
    import torch

__all__ = ["CONVENTIONS", "Convention", "describe", "get_convention", "psnr", "psnr_batch", "ssim", "ssim_batch"]

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


def _cropped(a: torch.Tensor, b: torch.Tensor, convention: Convention, scale: int,
             min_side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Check two (N, 3, H, W) batches against each other and crop the convention's border.

    Raises ValueError when the shapes differ or the crop leaves a side shorter than `min_side`.
    """
    if a.shape != b.shape:
        raise ValueError(f"image shape {tuple(a.shape)} does not match reference shape {tuple(b.shape)} "
                         f"(as (N, 3, H, W))")
    crop = convention.crop_for(scale)
    height, width = a.shape[-2:]
    if min(height, width) - 2 * crop < min_side:
        raise ValueError(f"{height}x{width} images leave less than {min_side} px after a {crop} px crop")
    if crop:
        a, b = a[..., crop:-crop, crop:-crop], b[..., crop:-crop, crop:-crop]
    return a, b


def _y_plane(rgb: torch.Tensor) -> torch.Tensor:
    """8-bit RGB (..., 3, h, w) -> float64 (..., 1, h, w) MATLAB rgb2ycbcr Y on 0..255, unrounded.

    The same float64 operations, in the same order, as `rgb2y(a / 255.0) * 255.0` on numpy.
    """
    import torch

    return rgb2y(rgb.to(torch.float64) / 255.0) * 255.0


def _psnr_values(a: torch.Tensor, b: torch.Tensor, y_channel: bool) -> torch.Tensor:
    """(N,) float64 PSNR of cropped 8-bit batches (N, 3, h, w); inf where they are equal.

    Summed block by block (`blocks`), so no temporary is larger than a cache-sized strip.
    """
    import torch

    from cfanet.metrics._torch_window import blocks, run_blocks

    count, _, height, width = a.shape

    def block_sums(block) -> torch.Tensor:
        images, start, stop = block
        a_part, b_part = a[images, :, start:stop], b[images, :, start:stop]
        if y_channel:
            diff = _y_plane(a_part).sub_(_y_plane(b_part))
            return diff.mul_(diff).sum(dim=(1, 2, 3))
        diff = a_part.to(torch.int32).sub_(b_part.to(torch.int32))  # exact: integers, summed in int64
        return diff.mul_(diff).sum(dim=(1, 2, 3), dtype=torch.int64)

    plan = blocks(count, height, width, 9, a.device)
    total = torch.zeros(count, dtype=torch.float64 if y_channel else torch.int64, device=a.device)
    for (images, _, _), sums in zip(plan, run_blocks(block_sums, plan, a.device)):  # in plan order
        total[images] += sums
    mse = total.to(torch.float64) / ((1 if y_channel else 3) * height * width)
    return 10.0 * torch.log10(DATA_RANGE**2 / mse)


def _ssim_strip(a: torch.Tensor, b: torch.Tensor, planes: torch.Tensor) -> torch.Tensor:
    """SSIM map (..., r, w-10) of the strips a, b (..., r+10, w) float64 on 0..255 (BasicSR `_ssim`).

    `planes` is a (..., 5, r+10, w) float64 workspace (overwritten).
    """
    import torch

    from cfanet.metrics._torch_window import gaussian_valid

    planes[..., 0, :, :] = a
    planes[..., 1, :, :] = b
    torch.mul(a, a, out=planes[..., 2, :, :])
    torch.mul(b, b, out=planes[..., 3, :, :])
    torch.mul(a, b, out=planes[..., 4, :, :])
    mu_a, mu_b, var_a, var_b, cov = gaussian_valid(planes).unbind(-3)
    mu_ab = mu_a * mu_b
    cov.sub_(mu_ab)
    var_a.addcmul_(mu_a, mu_a, value=-1.0)
    var_b.addcmul_(mu_b, mu_b, value=-1.0)
    numerator = mu_ab.mul_(2.0).add_(C1).mul_(cov.mul_(2.0).add_(C2))
    denominator = torch.mul(mu_a, mu_a).addcmul_(mu_b, mu_b).add_(C1).mul_(var_a.add_(var_b).add_(C2))
    return numerator.div_(denominator)


def _ssim_values(a: torch.Tensor, b: torch.Tensor, y_channel: bool) -> torch.Tensor:
    """(N,) float64 SSIM of cropped 8-bit batches (N, 3, h, w): per plane the mean of the valid map,
    then the mean over the planes (Y, or R, G, B)."""
    import torch

    from cfanet.metrics._torch_window import blocks, run_blocks

    count, height, width = a.shape[0], a.shape[-2], a.shape[-1]
    channels = 1 if y_channel else 3
    out_h, out_w = height - WINDOW + 1, width - WINDOW + 1

    def block_sums(block) -> torch.Tensor:
        images, start, stop = block
        rows = stop - start + WINDOW - 1
        a_part, b_part = a[images, :, start : start + rows], b[images, :, start : start + rows]
        if y_channel:
            a_part, b_part = _y_plane(a_part), _y_plane(b_part)
        else:
            a_part, b_part = a_part.to(torch.float64), b_part.to(torch.float64)
        workspace = a_part.new_empty((images.stop - images.start, channels, 5, rows, width))
        return _ssim_strip(a_part, b_part, workspace).sum(dim=(-2, -1))

    plan = blocks(count, out_h, out_w, channels * 5, a.device)
    total = torch.zeros((count, channels), dtype=torch.float64, device=a.device)
    for (images, _, _), sums in zip(plan, run_blocks(block_sums, plan, a.device)):  # in plan order
        total[images] += sums
    return (total / (out_h * out_w)).mean(dim=1)  # equal-sized maps: mean of per-channel means


# --- batched API ----------------------------------------------------------------------------------


def _batch(img, ref, convention: str | Convention, scale: int, min_side: int):
    img, ref = eight_bit_tensor(img, "img"), eight_bit_tensor(ref, "ref")
    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(f"img must be shaped (N, 3, H, W), got {tuple(img.shape)}")
    if img.device != ref.device:
        raise ValueError(f"img is on {img.device} but ref is on {ref.device}")
    convention = get_convention(convention)
    return _cropped(img, ref, convention, scale, min_side) + (convention,)


def psnr_batch(img: torch.Tensor, ref: torch.Tensor, convention: str | Convention = "paper",
               scale: int = 1) -> torch.Tensor:
    """PSNR in dB of each image of `img` against the same row of `ref`: (N,) float64, one pass.

    `img` and `ref` are (N, 3, H, W) tensors of 8-bit RGB values on the 0..255 scale (uint8, or
    an integer/float dtype holding integers in 0..255; [0, 1] floats raise ValueError), on one
    device; the result stays there. inf where a pair is equal. Row i equals `psnr` of the same
    8-bit images in any of its forms (e.g. uint8 (H, W, 3) arrays), to ~1e-14 dB (exactly for RGB).
    """
    a, b, convention = _batch(img, ref, convention, scale, min_side=1)
    return _psnr_values(a, b, convention.y_channel)


def ssim_batch(img: torch.Tensor, ref: torch.Tensor, convention: str | Convention = "paper",
               scale: int = 1) -> torch.Tensor:
    """SSIM of each image of `img` against the same row of `ref`: (N,) float64, one pass.

    Inputs as in `psnr_batch`; 1 where a pair is equal. Row i equals `ssim` of the same 8-bit
    images in any of its forms, to ~1e-15.
    """
    a, b, convention = _batch(img, ref, convention, scale, min_side=WINDOW)
    return _ssim_values(a, b, convention.y_channel)


# --- single-call API (numpy or tensors, any accepted form) ------------------------------------------


def _pairs(img, ref, convention: Convention, scale: int, min_side: int):
    """Both images as cropped 8-bit (N, 3, h, w) tensors, on `img`'s device when it is a tensor."""
    import torch

    device = img.device if is_tensor(img) else ref.device if is_tensor(ref) else "cpu"
    a, b = (torch.from_numpy(as_uint8_rgb(x)).to(device) for x in (img, ref))
    return _cropped(a, b, convention, scale, min_side)


def _reduce(values: torch.Tensor, reduction: Reduction) -> float | np.ndarray:
    values = values.cpu().numpy()
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
    Computed on `img`'s device when it is a tensor; batches of tensors: `psnr_batch`.
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    convention = get_convention(convention)
    a, b = _pairs(img, ref, convention, scale, min_side=1)
    return _reduce(_psnr_values(a, b, convention.y_channel), reduction)


def ssim(img, ref, convention: str | Convention = "paper", scale: int = 1, reduction: Reduction = "mean"):
    """SSIM of `img` against `ref` under `convention`; 1 where they are equal.

    Per plane, the mean of the valid-window SSIM map; over R, G, B the mean of the three planes.
    Inputs, `scale`, `reduction` and device as in `psnr`; batches of tensors: `ssim_batch`.
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    convention = get_convention(convention)
    a, b = _pairs(img, ref, convention, scale, min_side=WINDOW)
    return _reduce(_ssim_values(a, b, convention.y_channel), reduction)
