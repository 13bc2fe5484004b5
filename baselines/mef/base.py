"""What every MEF method shares: input checks and the harness boundary convention.

At the harness boundary a pair of exposures is two float32 RGB tensors in [0, 1], shaped
(N, 3, H, W) with equal shapes; the fused result has the same shape and convention. Each
method converts to its own working convention internally (MGFF works on [0, 255] doubles, Fast
SPD-MEF on [0, 1] doubles, ...) and returns what its official code would save, as float32.
"""

from __future__ import annotations

import torch


def check_pair(over: torch.Tensor, under: torch.Tensor, method: str) -> None:
    """Raise ValueError naming the method unless `over` and `under` are equal-shaped (N, 3, H, W) floats."""
    for role, image in (("over", over), ("under", under)):
        if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[1] != 3:
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"{method}: {role} must be a tensor shaped (N, 3, H, W), got {shape}")
        if not image.is_floating_point():
            raise ValueError(f"{method}: {role} must be float in [0, 1], got {image.dtype}")
    if over.shape != under.shape:
        raise ValueError(f"{method}: exposures differ in shape: over {tuple(over.shape)}, under {tuple(under.shape)}")
