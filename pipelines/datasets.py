"""A profile's dataset: `[profiles.P.dataset]` turned into a `cfanet.data.SceneDataset`."""

from __future__ import annotations

from pathlib import Path

from cfanet.data import SceneDataset, open_dataset
from pipelines.config import Profile


def open_profile_dataset(profile: Profile, scale: int, split_file: Path | None = None,
                         use_split: bool = True) -> SceneDataset:
    """The profile's dataset at `scale`: restricted to `split_file` when given, else to the
    profile's `dataset.split_file` (unless `use_split` is False: every scene)."""
    data = profile.dataset
    split = split_file if split_file is not None else (data.split_file if use_split else None)
    if data.kind == "demo":
        return open_dataset("demo", scale, num_scenes=data.num_scenes, hr_size=data.hr_size, seed=data.seed,
                            split_file=split)
    extra = {"sice": {"label_dir": data.label_dir, "hr_long_side": data.hr_long_side,
                      "parts": data.parts}}.get(data.kind, {})
    return open_dataset(data.kind, scale, root=data.root, split_file=split, **extra)
