"""The demo set: multi-exposure scenes synthesised from the colour photographs scikit-image ships.

Nothing is downloaded. Each scene is a square crop of one photograph, which serves as the
well-exposed ground truth. Its two exposures come from a simple, documented camera model:

1. **Linearise**: the 8-bit sRGB photo is mapped to linear radiance with the sRGB decoding curve.
2. **Expose**: radiance is multiplied by 2**(+s_over) (over-exposed) and 2**(-s_under)
   (under-exposed), with s drawn uniformly from `stops` per scene.
3. **Sensor noise** (optional): Gaussian noise with variance `shot * x + read**2` in the linear
   domain (photon shot noise plus read noise), so the dark frame is noisy as a real one is.
4. **Respond**: the sRGB encoding curve is the camera response curve.
5. **Clip** to [0, 1] and **quantise** to 8 bits (round half up).

Everything is drawn from `numpy.random.default_rng((seed, split, index))`, so a scene depends only
on the seed, its split and its index. Photographs are split between `test` scenes (the benchmark)
and `train` scenes (demo training), so a model trained on `train` is evaluated on unseen photos.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from cfanet.data.base import SceneDataset
from cfanet.data.degrade import scene_from_hr
from cfanet.data.scene import DatasetError, Scene
from cfanet.images import quantize

TEST_PHOTOS = ("coffee", "chelsea", "rocket")
TRAIN_PHOTOS = ("astronaut", "immunohistochemistry", "hubble_deep_field", "retina")
SPLITS = {"test": (0, TEST_PHOTOS), "train": (1, TRAIN_PHOTOS)}


@dataclass(frozen=True)
class CameraModel:
    """Exposure range (stops, both directions) and sensor noise of the synthetic camera."""

    stops: tuple[float, float] = (2.0, 3.0)
    shot: float = 2e-4
    read: float = 2e-3

    def expose(self, linear: np.ndarray, stops: float, rng: np.random.Generator) -> np.ndarray:
        """Linear radiance (float64, any shape) -> 8-bit sRGB-encoded exposure, float in [0, 1]."""
        signal = linear * (2.0 ** stops)
        if self.shot > 0 or self.read > 0:
            variance = self.shot * np.clip(signal, 0.0, None) + self.read ** 2
            signal = signal + rng.standard_normal(signal.shape) * np.sqrt(variance)
        return quantize(srgb_encode(np.clip(signal, 0.0, 1.0))).astype(np.float64) / 255.0


def srgb_decode(v: np.ndarray) -> np.ndarray:
    """sRGB-encoded [0, 1] -> linear [0, 1] (IEC 61966-2-1)."""
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_encode(x: np.ndarray) -> np.ndarray:
    """Linear [0, 1] -> sRGB-encoded [0, 1]; the inverse of `srgb_decode`."""
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.clip(x, 0.0031308, None), 1 / 2.4) - 0.055)


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    import skimage.data

    image = getattr(skimage.data, name)()
    if image.ndim != 3 or image.shape[2] != 3:
        raise DatasetError(f"skimage.data.{name} is not an RGB photograph")
    return image


class DemoDataset(SceneDataset):
    """`num_scenes` generated scenes of `hr_size` x `hr_size` HR pixels from one split."""

    kind = "demo"

    def __init__(self, scale: int, num_scenes: int = 6, hr_size: int = 192, seed: int = 0,
                 split: str = "test", camera: CameraModel = CameraModel(), split_file=None):
        super().__init__(scale, split_file)
        if split not in SPLITS:
            raise DatasetError(f"demo split must be one of {sorted(SPLITS)}, got {split!r}")
        if hr_size % scale or hr_size < 48:
            raise DatasetError(f"demo hr_size {hr_size} must be >= 48 and a multiple of the scale {scale}")
        self.num_scenes, self.hr_size, self.seed, self.split, self.camera = num_scenes, hr_size, seed, split, camera

    def _all_names(self) -> list[str]:
        photos = SPLITS[self.split][1]
        return [f"{photos[i % len(photos)]}-{i:02d}" for i in range(self.num_scenes)]

    def _load(self, name: str) -> Scene:
        photo_name, index = name.rsplit("-", 1)
        index = int(index)
        rng = np.random.default_rng((self.seed, SPLITS[self.split][0], index))
        photo = _photo(photo_name)
        height, width = photo.shape[:2]
        size = min(self.hr_size, height, width)
        size -= size % self.scale
        top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
        crop = photo[top:top + size, left:left + size].astype(np.float64) / 255.0
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        linear = srgb_decode(crop)
        stops_over, stops_under = (float(rng.uniform(*self.camera.stops)) for _ in range(2))
        over = self.camera.expose(linear, stops_over, rng)
        under = self.camera.expose(linear, -stops_under, rng)

        def tensor(a):
            return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))[None]

        info = {"dataset": "demo", "photo": f"skimage.data.{photo_name}", "crop": (top, left, size),
                "stops_over": stops_over, "stops_under": -stops_under, "seed": self.seed, "split": self.split}
        return scene_from_hr(name, tensor(over), tensor(under), tensor(crop), self.scale, info)
