"""Training and validation scenes: the demo set's splits, or named scenes of any dataset."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cfanet.data import SceneDataset
from cfanet.data.scene import DatasetError, Scene

# Seed offset of the demo validation scenes: new crops and exposures of the training photographs.
DEMO_VALIDATION_SEED_OFFSET = 1000


def demo_training_data(scale: int, hr_size: int = 192, seed: int = 0, num_train: int = 16,
                       num_val: int = 4) -> tuple[list[Scene], list[Scene]]:
    """Scenes to train a demo model on, and to validate it on, from the demo set's `train` split.

    Training: `num_train` scenes of the train photographs (`DemoDataset(split="train")`).
    Validation: `num_val` other crops and exposures of the same photographs (the dataset seed
    shifted by `DEMO_VALIDATION_SEED_OFFSET`), so that choosing the best checkpoint never looks at
    the `test` split's photographs, on which the benchmark scores the model.
    """
    from cfanet.data.demo import DemoDataset

    train = DemoDataset(scale, num_scenes=num_train, hr_size=hr_size, seed=seed, split="train")
    val = DemoDataset(scale, num_scenes=num_val, hr_size=hr_size, seed=seed + DEMO_VALIDATION_SEED_OFFSET,
                      split="train")
    return list(train), list(val)


def load_scenes(dataset: SceneDataset, names: Sequence[str] | None = None, progress: bool = False) -> list[Scene]:
    """The scenes `names` of `dataset` (all of them when None), loaded, in the given order; with
    `progress`, a progress bar (loading a large set reads and downscales every image)."""
    names = dataset.names() if names is None else list(names)
    unknown = sorted(set(names) - set(dataset.names()))
    if unknown:
        raise DatasetError(f"{len(unknown)} scene(s) not in the {dataset.kind} dataset: {', '.join(unknown[:10])}")
    if progress:
        from tqdm.auto import tqdm

        names = tqdm(names, desc=f"load {dataset.kind} scenes", unit="scene")
    return [dataset.load(name) for name in names]


def hold_out(names: Sequence[str], fraction: float = 0.05, seed: int = 0,
             limit: int = 10) -> tuple[list[str], list[str]]:
    """Split scene names into (train, validation): a seeded random `fraction` (at least 1, at most
    `limit`) is held out for validation, both lists keep the input order."""
    names = list(names)
    if len(names) < 2:
        raise DatasetError(f"need at least 2 scenes to hold some out for validation, got {len(names)}")
    count = min(limit, max(1, round(fraction * len(names))), len(names) - 1)
    held = set(np.random.default_rng([seed, 2]).choice(len(names), size=count, replace=False).tolist())
    return ([n for i, n in enumerate(names) if i not in held], [n for i, n in enumerate(names) if i in held])
