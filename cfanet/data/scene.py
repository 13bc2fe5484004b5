"""The unit every dataset yields: one multi-exposure scene at one scale."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Scene:
    """One scene: LR exposures in, HR references out; all float32 RGB (1, 3, H, W) in [0, 1].

    `over`/`under` are the low-resolution inputs (H, W); `gt` is the well-exposed high-resolution
    ground truth and `gt_over`/`gt_under` the high-resolution exposures (scale*H, scale*W), which are
    the reference sequence of MEF-SSIM. Any of the three HR images may be None when a dataset has
    no such image. `info` records provenance (source files, chosen exposures, brightness).
    """

    name: str
    over: torch.Tensor
    under: torch.Tensor
    gt: torch.Tensor | None
    gt_over: torch.Tensor | None
    gt_under: torch.Tensor | None
    scale: int
    info: dict = field(default_factory=dict)

    def astuple(self):
        """`(name, over, under, gt, gt_over, gt_under)`."""
        return self.name, self.over, self.under, self.gt, self.gt_over, self.gt_under


class DatasetError(ValueError):
    """A dataset folder is malformed; the message names the folder or file."""
