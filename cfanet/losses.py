"""Training losses: a differentiable SSIM and the coupled SSIM loss of CF-Net and CFANet.

`ssim` computes what `pytorch_msssim.ssim` computes (the package CF-Net trains with): a Gaussian
window applied separably and without padding (only centres whose window lies inside the image),
`K = (0.01, 0.03)`, the SSIM map averaged per image and channel, optionally clipped at zero per
image and channel (`nonnegative_ssim`), then averaged. Defaults are CF-Net's call in its
`train.py`: `ssim(x, y, win_size=7, nonnegative_ssim=True)` with pytorch_msssim's defaults
`win_sigma=1.5` and `data_range=255` on images on [0, 255]. The data range is a required
argument here, so images on [0, 1] are never scored with 255's constants by accident (SSIM with
`data_range=1` on x / 255 equals SSIM with 255 on x, up to float rounding).

One deliberate difference: images smaller than the window raise ValueError (pytorch_msssim skips
the smoothing along such an axis with a warning and returns a different quantity).

`coupled_ssim_loss` is CF-Net's loss (official `train.py`), the hierarchical loss of the CFANet
paper (Sec. 2.3) with its weights as arguments:

    L = lo (1 - SSIM(I_0^o, HR^o)) + lu (1 - SSIM(I_0^u, HR^u))
        + sum_t lt [(1 - SSIM(I_t^o, GT)) + (1 - SSIM(I_t^u, GT))],   t = 1..T,

all weights 1 by default (the official loss; its code writes each pair as `- ssim - ssim + 2.0`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# pytorch_msssim's stabilising constants (K1, K2).
SSIM_K = (0.01, 0.03)


def gaussian_taps(win_size: int, win_sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian taps (win_size,), float32, centred; computed as pytorch_msssim does
    (in float32, then cast to the images' dtype), so float64 inputs see the same window."""
    if win_size < 1 or win_size % 2 != 1:
        raise ValueError(f"SSIM window size must be odd and positive, got {win_size}")
    coords = torch.arange(win_size, dtype=torch.float32) - win_size // 2
    taps = torch.exp(-(coords ** 2) / (2 * win_sigma ** 2))
    return taps / taps.sum()


def _blur_valid(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable correlation of each channel with `taps` (rows first, then columns), valid part only:
    (N, C, H, W) -> (N, C, H - k + 1, W - k + 1)."""
    channels, k = x.shape[1], taps.numel()
    column = taps.to(x.device, x.dtype).view(1, 1, k, 1).expand(channels, 1, k, 1)
    row = column.reshape(channels, 1, 1, k)
    return F.conv2d(F.conv2d(x, column, groups=channels), row, groups=channels)


def _check_images(x: torch.Tensor, y: torch.Tensor, win_size: int) -> None:
    for role, image in (("x", x), ("y", y)):
        if not isinstance(image, torch.Tensor) or image.dim() != 4:
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"ssim: {role} must be a tensor shaped (N, C, H, W), got {shape}")
        if not image.is_floating_point():
            raise ValueError(f"ssim: {role} must be a float tensor, got {image.dtype}")
    if x.shape != y.shape:
        raise ValueError(f"ssim: images differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.shape[-2] < win_size or x.shape[-1] < win_size:
        raise ValueError(f"ssim: images of {x.shape[-2]}x{x.shape[-1]} are smaller than the "
                         f"{win_size}x{win_size} window")


def ssim(x: torch.Tensor, y: torch.Tensor, *, data_range: float, win_size: int = 7, win_sigma: float = 1.5,
         k: tuple[float, float] = SSIM_K, nonnegative_ssim: bool = True, size_average: bool = True) -> torch.Tensor:
    """SSIM of two image batches (N, C, H, W) on [0, data_range], differentiable in both.

    Returns a scalar (the mean over images and channels) with `size_average`, else one value per
    image (N,) (the mean over its channels). `nonnegative_ssim` clips each image-channel SSIM at 0
    before averaging (a ReLU, as pytorch_msssim). H and W must be at least `win_size`.
    """
    _check_images(x, y, win_size)
    taps = gaussian_taps(win_size, win_sigma)
    c1, c2 = (k[0] * data_range) ** 2, (k[1] * data_range) ** 2
    mu_x, mu_y = _blur_valid(x, taps), _blur_valid(y, taps)
    mu_x_sq, mu_y_sq, mu_xy = mu_x.pow(2), mu_y.pow(2), mu_x * mu_y
    var_x = _blur_valid(x * x, taps) - mu_x_sq
    var_y = _blur_valid(y * y, taps) - mu_y_sq
    cov_xy = _blur_valid(x * y, taps) - mu_xy
    contrast_structure = (2 * cov_xy + c2) / (var_x + var_y + c2)
    ssim_map = ((2 * mu_xy + c1) / (mu_x_sq + mu_y_sq + c1)) * contrast_structure
    per_channel = torch.flatten(ssim_map, 2).mean(-1)   # (N, C)
    if nonnegative_ssim:
        per_channel = torch.relu(per_channel)
    return per_channel.mean() if size_average else per_channel.mean(1)


@dataclass(frozen=True)
class CoupledLossWeights:
    """Weights of the coupled SSIM loss: `over` (lambda_o) and `under` (lambda_u) for the first
    outputs against the HR exposures, `iterations` (lambda_t, t = 1..T) for the later outputs
    against the ground truth; None means 1 for every iteration. All 1: the official loss."""

    over: float = 1.0
    under: float = 1.0
    iterations: tuple[float, ...] | None = None

    def for_iterations(self, count: int) -> tuple[float, ...]:
        if self.iterations is None:
            return (1.0,) * count
        if len(self.iterations) != count:
            raise ValueError(f"coupled_ssim_loss: {len(self.iterations)} iteration weights for {count} iterations")
        return tuple(self.iterations)


def coupled_ssim_terms(outputs_over: Sequence[torch.Tensor], outputs_under: Sequence[torch.Tensor],
                       hr_over: torch.Tensor, hr_under: torch.Tensor, gt: torch.Tensor, *,
                       data_range: float, win_size: int = 7) -> dict[str, torch.Tensor]:
    """The unweighted `1 - SSIM` terms of the coupled loss, by name: "over_0", "under_0" (first
    outputs vs the HR exposures), then "over_t", "under_t" for t = 1..T (vs the ground truth)."""
    if len(outputs_over) != len(outputs_under) or len(outputs_over) < 1:
        raise ValueError(f"coupled_ssim_loss: need the same number (>= 1) of over and under outputs, "
                         f"got {len(outputs_over)} and {len(outputs_under)}")

    def term(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 1 - ssim(output, target, data_range=data_range, win_size=win_size, nonnegative_ssim=True)

    terms = {"over_0": term(outputs_over[0], hr_over), "under_0": term(outputs_under[0], hr_under)}
    for t in range(1, len(outputs_over)):
        terms[f"over_{t}"] = term(outputs_over[t], gt)
        terms[f"under_{t}"] = term(outputs_under[t], gt)
    return terms


def coupled_ssim_loss(outputs_over: Sequence[torch.Tensor], outputs_under: Sequence[torch.Tensor],
                      hr_over: torch.Tensor, hr_under: torch.Tensor, gt: torch.Tensor,
                      weights: CoupledLossWeights | None = None, *, data_range: float,
                      win_size: int = 7) -> torch.Tensor:
    """CF-Net's loss (see the module docstring): a scalar tensor, differentiable in the outputs.

    `outputs_over` / `outputs_under`: the T + 1 outputs of each branch (`I_0`, then one per
    coupled iteration), each (N, 3, H, W) like the targets, all on [0, data_range] (CF-Net: 255).
    """
    weights = weights or CoupledLossWeights()
    terms = coupled_ssim_terms(outputs_over, outputs_under, hr_over, hr_under, gt,
                               data_range=data_range, win_size=win_size)
    loss = weights.over * terms["over_0"] + weights.under * terms["under_0"]
    for t, weight in enumerate(weights.for_iterations(len(outputs_over) - 1), start=1):
        loss = loss + weight * (terms[f"over_{t}"] + terms[f"under_{t}"])
    return loss
