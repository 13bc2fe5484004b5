"""Two honest, cheap baselines as cfanet-bench methods: MATLAB bicubic upscaling (an SR method)
and the per-pixel mean of the exposures (an MEF method).

Each is a class with the call of its kind (`upscale` for SR, `fuse` for MEF; float32 RGB
(N, 3, H, W) in [0, 1] in and out) and a `register_method` descriptor. Installed with this
package's entry points (`cfanet_bench.methods`), they join the registry: `cfanet-bench list` shows
them, `cfanet-bench run Bicubic+Mean-Fusion Mean-Fusion+Bicubic` composes them with each other
(or with any built-in method: `Bicubic+MGFF`, `MEF-Net+Bicubic`), and a profile's `[grid]` can put
them in Table 1.
"""

from __future__ import annotations

import torch

from cfanet.methods import register_method
from cfanet.resize import imresize


@register_method("sr", deep=False, note="example plugin: MATLAB bicubic imresize, no learning")
class Bicubic:
    """Upscale by MATLAB's bicubic `imresize` (the interpolation the SR field's LR inputs are made with)."""

    name = "Bicubic"

    def __init__(self, scale: int = 2):
        self.scale = scale

    def upscale(self, lr: torch.Tensor) -> torch.Tensor:
        return imresize(lr.double(), self.scale).clamp(0.0, 1.0).float()


@register_method("mef", deep=False, note="example plugin: per-pixel mean of the exposures")
class MeanFusion:
    """Fuse by averaging the exposures pixel by pixel."""

    name = "Mean-Fusion"

    def fuse(self, over: torch.Tensor, under: torch.Tensor) -> torch.Tensor:
        if over.shape != under.shape:
            raise ValueError(f"{self.name}: exposures differ in size: {tuple(over.shape)} vs {tuple(under.shape)}")
        return (over.float() + under.float()) / 2
