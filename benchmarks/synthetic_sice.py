"""Synthetic scenes in SICE's distributed layout, for benchmarks that must run the real `sice` path.

    root/Part1/<k>/1.jpg ... <frames>.jpg   one exposure sequence per scene, dark to bright
    root/Part1/Label/<k>.jpg                the ground truth
    root/Part2/...                          the same for Part2

Scene names are SICE's (`Part1/<k>`, `Part2/<k>`): first the default test split's
(`cfanet.data.splits.sice_default_split`, the two parts interleaved), then the other sequence numbers
of both parts, so up to 589 scenes can be written and a split file listing them is read as a real
split is. Each scene is a crop of one of the demo's test photographs (scikit-image's `coffee`,
`chelsea`, `rocket`) with SICE's resized aspect ratio (844x1500, CF-Net's HR sample), resized to the
requested size with PIL's bicubic filter; its exposures come from the demo's camera model
(`cfanet.data.demo.CameraModel`: linearise, expose, sensor noise, sRGB response, 8-bit) at `frames`
stops evenly spaced from -stops_under to +stops_over; the label is the crop itself. Files are JPEG
(quality 95, `cfanet.images.write_image`), as SICE ships them. Everything is drawn from
`numpy.random.default_rng((seed, index))`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cfanet.data.demo import TEST_PHOTOS, CameraModel, srgb_decode
from cfanet.data.splits import SICE_PART_SIZES, sice_default_split

# SICE as CF-Net resized it: its shipped HR sample `lake` is 844x1500 (height x width).
SICE_HR_SIZE = (844, 1500)


def sice_scene_names(count: int) -> list[str]:
    """`count` SICE scene names: the default test split's, Part1 and Part2 interleaved in proportion,
    then every other sequence of both parts in order. At most 589 (SICE's sequences)."""
    total = sum(SICE_PART_SIZES.values())
    if not 1 <= count <= total:
        raise ValueError(f"scene count must be 1..{total} (SICE's sequences), got {count}")
    test = sice_default_split()
    by_part = {part: [n for n in test if n.startswith(part + "/")] for part in SICE_PART_SIZES}
    interleaved: list[str] = []
    taken = {part: 0 for part in by_part}
    while len(interleaved) < len(test):
        # the part furthest behind its share goes next (Part1 60 : Part2 40 -> P1, P2, P1, P2, P1, ...)
        part = min((p for p in by_part if taken[p] < len(by_part[p])),
                   key=lambda p: (taken[p] / len(by_part[p]), list(by_part).index(p)))
        interleaved.append(by_part[part][taken[part]])
        taken[part] += 1
    rest = [f"{part}/{k}" for part, size in SICE_PART_SIZES.items() for k in range(1, size + 1)
            if f"{part}/{k}" not in set(test)]
    return (interleaved + rest)[:count]


def hr_size_for(long_side: int) -> tuple[int, int]:
    """(height, width) with SICE's resized aspect ratio and the given long side (844x1500 at 1500)."""
    height, width = SICE_HR_SIZE
    return max(1, int(np.floor(long_side * height / width + 0.5))), long_side


def _photo(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()


def _crop_resized(photo: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random crop of `photo` with the aspect ratio of `size`, resized to `size`; uint8 (H, W, 3)."""
    from PIL import Image

    height, width = photo.shape[:2]
    target_h, target_w = size
    crop_w = min(width, int(height * target_w / target_h))
    crop_h = min(height, int(crop_w * target_h / target_w))
    top, left = int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1))
    crop = photo[top:top + crop_h, left:left + crop_w]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    image = Image.fromarray(np.ascontiguousarray(crop)).resize((target_w, target_h), Image.BICUBIC)
    return np.asarray(image)


def write_sice_scenes(root: Path, names: list[str], long_side: int, *, frames: int = 3, seed: int = 0,
                      camera: CameraModel = CameraModel()) -> dict[str, tuple[int, int]]:
    """Write the scenes `names` (`Part1/<k>` ...) under `root` in SICE's two-part layout, every image
    `hr_size_for(long_side)`; `frames` (>= 2) exposures per sequence. Returns {name: (height, width)}."""
    if frames < 2:
        raise ValueError(f"a SICE sequence needs at least two exposures, got frames={frames}")
    from cfanet.images import write_image

    size = hr_size_for(long_side)
    written = {}
    for index, name in enumerate(names):
        part, number = name.split("/")
        rng = np.random.default_rng((seed, index))
        photo = _photo(TEST_PHOTOS[index % len(TEST_PHOTOS)])
        label = _crop_resized(photo, size, rng).astype(np.float64) / 255.0
        linear = srgb_decode(label)
        under, over = float(rng.uniform(*camera.stops)), float(rng.uniform(*camera.stops))
        sequence = root / part / number
        sequence.mkdir(parents=True, exist_ok=True)
        for i, stops in enumerate(np.linspace(-under, over, frames), start=1):
            exposure = camera.expose(linear, float(stops), rng)
            write_image(sequence / f"{i}.jpg", exposure.transpose(2, 0, 1))
        labels = root / part / "Label"
        labels.mkdir(parents=True, exist_ok=True)
        write_image(labels / f"{number}.jpg", label.transpose(2, 0, 1))
        written[name] = size
    return written
