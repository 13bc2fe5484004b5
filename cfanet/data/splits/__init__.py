"""Train/test splits that ship with the package, and how each was made.

`sice-default` (file `sice_default_test.txt`): the test scenes of SICE (Cai, Gu, Zhang, TIP 2018)
for the joint MEF + SR benchmark; every other scene is for training (the train command holds a
seeded 5% of those out for validation). Neither the CFANet paper nor CF-Net (Deng et al., TIP
2021; its repository ships one sample scene and no scene list) publishes the split it used, and we
found no SICE-based MEF work whose list could be cited, so the split is seeded and recorded here:
per part, `numpy.random.default_rng(seed).choice(n, size=k, replace=False) + 1` with seed 0, 60 of
Part1's 360 scenes and 40 of Part2's 229 (100 of 589, 17%, both parts in proportion), names
`Part1/<k>` and `Part2/<k>` as `SiceDataset` reads the two-part layout. `sice_default_split()`
regenerates the list; a test checks that the shipped file equals it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

SPLITS_DIR = Path(__file__).resolve().parent
SHIPPED_SPLITS = {"sice-default": "sice_default_test.txt"}
# SICE's sequences per part (Cai et al.: 360 in Part1, 229 in Part2, each numbered from 1).
SICE_PART_SIZES = {"Part1": 360, "Part2": 229}
SICE_TEST_PER_PART = {"Part1": 60, "Part2": 40}
SICE_SPLIT_SEED = 0


def sice_default_split(seed: int = SICE_SPLIT_SEED) -> list[str]:
    """The test scene names of `sice-default`, in natural order (`Part1/3`, ..., `Part2/227`)."""
    names = []
    for part, size in SICE_PART_SIZES.items():
        chosen = np.random.default_rng(seed).choice(size, size=SICE_TEST_PER_PART[part], replace=False) + 1
        names += [f"{part}/{k}" for k in sorted(int(k) for k in chosen)]
    return names


def shipped_split(name: str) -> Path:
    """The file of a shipped split; KeyError listing the known names."""
    if name not in SHIPPED_SPLITS:
        raise KeyError(f"no shipped split {name!r}; known: {', '.join(SHIPPED_SPLITS)}")
    return SPLITS_DIR / SHIPPED_SPLITS[name]


def split_header(path: Path) -> str:
    """The comment lines at the top of a split file (how it was made), without the '#'."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(re.sub(r"^#\s?", "", line))
    return "\n".join(lines)
