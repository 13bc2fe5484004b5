"""Aligned random patches of multi-exposure scenes, with the 8 flips/rotations, seeded and stateless.

A patch batch holds, for each sample, an LR crop of the two exposures (`over`, `under`,
`patch_size` x `patch_size`) and the HR crops at the same place (`gt_over`, `gt_under`, `gt`,
`scale * patch_size` on a side): LR pixel (i, j) covers HR pixels (scale*i .. scale*i + scale-1,
scale*j .. scale*j + scale-1), as MATLAB's bicubic downscaling that made the LR inputs assumes. A
flip or rotation applied to all images of a sample keeps that correspondence.

The sampler is counter-based: the batch of step `s` is a pure function of (seed, s), so a resumed
run draws exactly the batches an uninterrupted one would, with no sampler state to save. Scenes
are visited in passes: pass p is a seeded permutation of all training scenes (one crop per scene
and pass, as CF-Net's shuffled data loader), and sample k of the run is position k mod n of pass
k // n. Crop positions and the flip/rotation of sample k come from a generator seeded by (seed, k).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from cfanet.data.scene import Scene
from cfanet.training.config import TrainingError

LR_ROLES = ("over", "under")
HR_ROLES = ("gt_over", "gt_under", "gt")
# Which images each kind of training task needs.
ROLES_BY_KIND = {
    "joint": ("over", "under", "gt_over", "gt_under", "gt"),
    "sr": ("over", "under", "gt_over", "gt_under"),
    "mef": ("gt_over", "gt_under"),
}
DIHEDRAL_COUNT = 8
_SAMPLER_STREAM, _CROP_STREAM = 0, 1


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Element `k` (0..7) of the dihedral group on the last two axes of `x`: `k % 4` quarter turns
    counter-clockwise, then (k >= 4) a left-right flip. k = 0 is the identity."""
    if not 0 <= k < DIHEDRAL_COUNT:
        raise ValueError(f"dihedral index must be in 0..7, got {k}")
    y = torch.rot90(x, k % 4, dims=(-2, -1)) if k % 4 else x
    return torch.flip(y, dims=(-1,)) if k >= 4 else y


@dataclass(frozen=True)
class PatchBatch:
    """One batch: LR crops (B, 3, p, p) and HR crops (B, 3, s*p, s*p), float32 in [0, 1]; images
    the task does not need are None."""

    over: torch.Tensor | None = None
    under: torch.Tensor | None = None
    gt_over: torch.Tensor | None = None
    gt_under: torch.Tensor | None = None
    gt: torch.Tensor | None = None

    def to(self, device: torch.device | str,
           memory_format: torch.memory_format = torch.contiguous_format) -> "PatchBatch":
        """The batch on `device` in `memory_format`."""
        return replace(self, **{f.name: getattr(self, f.name).to(device, memory_format=memory_format)
                                for f in fields(self) if getattr(self, f.name) is not None})

    def __len__(self) -> int:
        for f in fields(self):
            if getattr(self, f.name) is not None:
                return getattr(self, f.name).shape[0]
        return 0


def _compact(image: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) float in [0, 1] -> (3, H, W): uint8 when the values are 8-bit levels (as every
    dataset's images are; a quarter of the memory, converted back exactly), else float32."""
    image = image.detach().to("cpu", torch.float32)[0]
    levels = torch.round(image * 255.0)
    if levels.min() >= 0 and levels.max() <= 255 and torch.equal(levels / 255.0, image):
        return levels.to(torch.uint8)
    return image.contiguous()


def _as_float(crop: torch.Tensor) -> torch.Tensor:
    return crop.to(torch.float32) / 255.0 if crop.dtype == torch.uint8 else crop.clone()


class PatchSampler:
    """Batches of aligned random patches from in-memory scenes.

    `scenes`: the training scenes (all at one scale); `roles`: the images each sample holds (a
    task kind's `ROLES_BY_KIND` entry); `patch_size` in LR pixels. Images are kept in memory,
    compacted to uint8 where exact. Raises TrainingError when a scene lacks a needed image, has
    an LR side shorter than the patch, or when LR and HR sizes disagree with the scale.
    """

    def __init__(self, scenes: Sequence[Scene], patch_size: int, batch_size: int, seed: int = 0,
                 augment: bool = True, roles: Sequence[str] = ROLES_BY_KIND["joint"]):
        if not scenes:
            raise TrainingError("no training scenes")
        unknown = set(roles) - set(LR_ROLES + HR_ROLES)
        if unknown:
            raise TrainingError(f"unknown image roles {sorted(unknown)}")
        self.patch_size, self.batch_size, self.seed, self.augment = patch_size, batch_size, seed, augment
        self.roles = tuple(roles)
        self.scale = scenes[0].scale
        self.names: list[str] = []
        self._images: list[dict[str, torch.Tensor]] = []
        self._lr_sizes: list[tuple[int, int]] = []
        for scene in scenes:
            self._add(scene)
        self._pass_cache: tuple[int, np.ndarray] | None = None

    def _add(self, scene: Scene) -> None:
        if scene.scale != self.scale:
            raise TrainingError(f"scene {scene.name!r} is at x{scene.scale}, the others at x{self.scale}")
        missing = [role for role in self.roles if getattr(scene, role) is None]
        if missing:
            raise TrainingError(f"scene {scene.name!r} has no {', '.join(missing)} image, which this training needs")
        lr_h, lr_w = scene.over.shape[-2:]
        for role in self.roles:
            h, w = getattr(scene, role).shape[-2:]
            factor = 1 if role in LR_ROLES else self.scale
            if (h, w) != (lr_h * factor, lr_w * factor):
                raise TrainingError(f"scene {scene.name!r}: {role} is {h}x{w}, "
                                    f"expected {lr_h * factor}x{lr_w * factor} "
                                    f"(LR {lr_h}x{lr_w} at x{self.scale})")
        if min(lr_h, lr_w) < self.patch_size:
            raise TrainingError(f"scene {scene.name!r}: LR size {lr_h}x{lr_w} is smaller than the "
                                f"{self.patch_size}-pixel patch; use a smaller patch size")
        self.names.append(scene.name)
        self._images.append({role: _compact(getattr(scene, role)) for role in self.roles})
        self._lr_sizes.append((lr_h, lr_w))

    def __len__(self) -> int:
        return len(self.names)

    def _pass_order(self, index: int) -> np.ndarray:
        if self._pass_cache is None or self._pass_cache[0] != index:
            order = np.random.default_rng([self.seed, _SAMPLER_STREAM, index]).permutation(len(self.names))
            self._pass_cache = (index, order)
        return self._pass_cache[1]

    def sample_plan(self, sample: int) -> tuple[int, int, int, int]:
        """(scene index, LR top, LR left, dihedral k) of sample number `sample` of the run."""
        n = len(self.names)
        scene = int(self._pass_order(sample // n)[sample % n])
        rng = np.random.default_rng([self.seed, _CROP_STREAM, sample])
        lr_h, lr_w = self._lr_sizes[scene]
        top = int(rng.integers(0, lr_h - self.patch_size + 1))
        left = int(rng.integers(0, lr_w - self.patch_size + 1))
        k = int(rng.integers(0, DIHEDRAL_COUNT)) if self.augment else 0
        return scene, top, left, k

    def crop(self, scene: int, top: int, left: int, k: int = 0) -> dict[str, torch.Tensor]:
        """The aligned crops (3, p, p) / (3, s*p, s*p) of one scene at LR position (top, left),
        transformed by dihedral element `k`."""
        p, s = self.patch_size, self.scale
        out = {}
        for role, image in self._images[scene].items():
            f = 1 if role in LR_ROLES else s
            out[role] = dihedral(_as_float(image[:, top * f:(top + p) * f, left * f:(left + p) * f]), k)
        return out

    def batch(self, step: int, rows: range | None = None) -> PatchBatch:
        """The batch of optimiser step `step` (0-based): samples step*B .. step*B + B - 1; with
        `rows`, only those rows of it (a process's shard of the global batch in a distributed run:
        `batch(s, rows)` equals `batch(s)` indexed by `rows`)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        rows = range(self.batch_size) if rows is None else rows
        if len(rows) == 0 or rows[0] < 0 or rows[-1] >= self.batch_size:
            raise ValueError(f"rows must be a non-empty part of 0..{self.batch_size - 1}, got {rows}")
        crops = [self.crop(*self.sample_plan(step * self.batch_size + i)) for i in rows]
        return PatchBatch(**{role: torch.stack([c[role] for c in crops]) for role in self.roles})
