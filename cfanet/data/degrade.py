"""High-resolution exposures -> the scene's low-resolution inputs (CF-Net's `Prepare_Data_HR_LR.m`)."""

from __future__ import annotations

from pathlib import Path

import torch

from cfanet.data.scene import DatasetError, Scene
from cfanet.resize import make_lr, modcrop


def check_same_size(sizes: dict[str, tuple[int, int]], where: str) -> None:
    """Raise `DatasetError` naming every file unless all (height, width) pairs are equal."""
    sizes = {name: size for name, size in sizes.items() if size is not None}
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{name} {h}x{w}" for name, (h, w) in sizes.items())
        raise DatasetError(f"{where}: images of one scene differ in size (HxW): {listing}")


def scene_from_hr(name: str, hr_over: torch.Tensor, hr_under: torch.Tensor, gt: torch.Tensor | None,
                  scale: int, info: dict, files: dict[str, Path] | None = None) -> Scene:
    """Build a scene from HR exposures: modcrop everything to a multiple of `scale`, then make the
    LR inputs by MATLAB bicubic downscaling of the 8-bit HR exposures."""
    files = files or {}
    check_same_size({str(files.get(key, key)): (tuple(img.shape[-2:]) if img is not None else None)
                     for key, img in (("over", hr_over), ("under", hr_under), ("gt", gt))}, f"scene {name!r}")
    height, width = hr_over.shape[-2:]
    if height < scale or width < scale:
        raise DatasetError(f"scene {name!r}: HR size {height}x{width} is smaller than the scale {scale}")
    hr_over, hr_under = modcrop(hr_over, scale), modcrop(hr_under, scale)
    gt = modcrop(gt, scale) if gt is not None else None
    info = dict(info, hr_size=tuple(hr_over.shape[-2:]), modcropped_from=(height, width), scale=scale)
    return Scene(name=name, over=make_lr(hr_over, scale), under=make_lr(hr_under, scale), gt=gt,
                 gt_over=hr_over, gt_under=hr_under, scale=scale, info=info)
