"""SICE as distributed (Cai, Gu, Zhang, TIP 2018; github.com/csjcai/SICE).

Layout: SICE ships as two parts, each a folder of numbered scene folders (one exposure sequence
each) plus its own label folder (`Label`, matched without case) holding the ground truth of
scene `k` as `k.<ext>`. Part 1 has 360 sequences, Part 2 229 (its labels come as a separate
download), both numbered from 1. Two layouts are read:

- **parts**: `root/Part1/{1,2,...,Label}` and `root/Part2/{1,2,...,Label}` (sub-folders whose
  names start with "part", matched without case, or the folders `parts` names). Scene names
  carry their part, `Part1/12` and `Part2/12`, so they stay unique; they become one sub-folder level
  in the outputs (`images/x2/<method>/Part1/12.png`).
- **one part**: `root/{1,2,...,Label}` (or a label folder given as `label_dir`): names `12`.

Of each sequence only the two extreme exposures are used, chosen by **mean brightness** (mean of
the 8-bit RGB values), not by file order: the darkest is `under`, the brightest `over`. The choice
and the brightness of every frame are recorded in `Scene.info` and in `selection_report()`.
Optionally all three HR images are resized (MATLAB bicubic) so that the long side has a given
length, as SICE-based work resizes the originals; the setting is recorded too.
"""

from __future__ import annotations

import logging
import math
import warnings
import re
from pathlib import Path

import numpy as np
import torch

from cfanet.data.base import SceneDataset
from cfanet.data.degrade import check_same_size, scene_from_hr
from cfanet.data.folders import find_child, find_image, image_files, list_folder
from cfanet.data.scene import DatasetError, Scene
from cfanet.images import quantize, read_image, read_image_array
from cfanet.resize import imresize_uint8

log = logging.getLogger(__name__)
SICE_SCENE_COUNTS = {"Part1": 360, "Part2": 229}


def _natural_key(text: str):
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", text)]


def mean_brightness(array: np.ndarray) -> float:
    """Mean of an RGB image's values on the 0..255 scale (16-bit images are rescaled)."""
    scale = 255.0 / 65535.0 if array.dtype == np.uint16 else (255.0 if array.dtype.kind == "f" else 1.0)
    return float(array.mean(dtype=np.float64) * scale)


class SiceDataset(SceneDataset):
    kind = "sice"

    def __init__(self, root: str | Path, scale: int, label_dir: str | Path | None = None,
                 hr_long_side: int | None = None, split_file: Path | None = None,
                 parts: list[str] | tuple[str, ...] | None = None):
        super().__init__(scale, split_file)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: SICE folder not found")
        self.hr_long_side = hr_long_side
        self.parts = self._find_parts(label_dir, parts)
        self._selection: dict[str, dict] = {}
        self._sequences: dict[str, tuple[Path, Path]] = {}

    @property
    def label_dir(self) -> Path:
        """The label folder of the first part (the only one in the one-part layout)."""
        return self.parts[0][2]

    def _find_parts(self, label_dir, parts) -> list[tuple[str, Path, Path]]:
        """`[(prefix, scene folder, label folder)]`: prefix "" for the one-part layout, else the part's
        folder name (`Part1`)."""
        if parts:
            if label_dir:
                raise DatasetError(f"{self.root}: dataset.label_dir is for one part; with parts, each part's "
                                   f"own Label folder holds its ground truth")
            found = []
            for name in parts:
                folder = find_child(self.root, name)
                if folder is None or not folder.is_dir():
                    raise DatasetError(f"{self.root}: no part folder {name!r}")
                found.append((folder.name, folder, self._part_labels(folder)))
            return found
        if label_dir:
            return [("", self.root, Path(label_dir))]
        own = find_child(self.root, "Label")
        if own is not None and own.is_dir():
            return [("", self.root, own)]
        part_folders = sorted((p for p in list_folder(self.root) if p.is_dir() and p.name.lower().startswith("part")),
                              key=lambda p: _natural_key(p.name))
        if not part_folders:
            raise DatasetError(f"{self.root}: no label folder (expected {self.root / 'Label'}, part folders "
                               f"such as {self.root / 'Part1'} each with its own Label folder, or set "
                               f"dataset.label_dir)")
        return [(p.name, p, self._part_labels(p)) for p in part_folders]

    @staticmethod
    def _part_labels(folder: Path) -> Path:
        labels = find_child(folder, "Label")
        if labels is None or not labels.is_dir():
            raise DatasetError(f"{folder}: no label folder (expected {folder / 'Label'}); SICE Part2's labels "
                               f"are a separate download")
        return labels

    def _part_names(self, prefix: str, folder: Path, label_dir: Path) -> list[str]:
        """The scene names of one part (prefixed `part/` in the parts layout); records each one's
        sequence folder and label folder."""
        if not label_dir.is_dir():
            raise DatasetError(f"{label_dir}: label folder not found")
        folders = [p for p in list_folder(folder) if p.is_dir() and p.resolve() != label_dir.resolve()]
        hidden = [p.name for p in folders if p.name.startswith(".")]
        scenes = [p.name for p in folders if not p.name.startswith(".")]
        single = [s for s in scenes if len(image_files(folder / s)) < 2]
        for names, why in ((hidden, "hidden folder(s)"), (single, "sequence(s) with fewer than two exposures")):
            if names:
                warnings.warn(f"{folder}: skipped {len(names)} {why}: {', '.join(sorted(names)[:10])}"
                              f"{' ...' if len(names) > 10 else ''}", UserWarning, stacklevel=3)
        scenes = sorted((s for s in scenes if s not in single), key=_natural_key)
        if not scenes:
            raise DatasetError(f"{folder}: no scene folders with at least two exposures")
        missing = [s for s in scenes if find_image(label_dir, s) is None]
        if missing:
            raise DatasetError(
                f"{label_dir}: no ground truth for {len(missing)} of {len(scenes)} scenes "
                f"({', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}); SICE Part2's labels "
                f"are a separate download, and one archive was reported to hold the wrong part")
        labels = len(image_files(label_dir))
        if labels != len(scenes):
            log.warning("%s: %d labels for %d scenes", label_dir, labels, len(scenes))
        if len(scenes) not in SICE_SCENE_COUNTS.values():
            log.info("%s: %d scenes (SICE Part1 has 360, Part2 229)", folder, len(scenes))
        names = []
        for scene in scenes:
            name = f"{prefix}/{scene}" if prefix else scene
            self._sequences[name] = (folder / scene, label_dir)
            names.append(name)
        return names

    def _all_names(self) -> list[str]:
        return [name for prefix, folder, labels in self.parts for name in self._part_names(prefix, folder, labels)]

    def _sequence(self, name: str) -> tuple[Path, Path]:
        if not self._sequences:
            self._all_names()
        return self._sequences[name]

    def select_extremes(self, name: str) -> dict:
        """Choose the darkest (`under`) and brightest (`over`) frames of a sequence by mean brightness.

        Returns and records `{"over": Path, "under": Path, "brightness": {file name: mean}}`.
        """
        if name not in self._selection:
            brightness, sizes = {}, {}
            files = list(image_files(self._sequence(name)[0]).values())
            for path in files:
                array = read_image_array(path)
                brightness[path.name], sizes[str(path)] = mean_brightness(array), array.shape[:2]
            check_same_size(sizes, f"SICE scene {name!r}")
            under = min(files, key=lambda p: brightness[p.name])
            over = max(files, key=lambda p: brightness[p.name])
            if under == over or brightness[under.name] == brightness[over.name]:
                raise DatasetError(f"{self._sequence(name)[0]}: all exposures have the same mean brightness")
            self._selection[name] = {"over": over, "under": under, "brightness": brightness}
            log.info("SICE %s: over=%s (%.1f), under=%s (%.1f)", name, over.name, brightness[over.name],
                     under.name, brightness[under.name])
        return self._selection[name]

    def selection_report(self) -> list[dict]:
        """For every scene loaded so far: the chosen files and every frame's mean brightness."""
        return [{"scene": n, "over": s["over"].name, "under": s["under"].name,
                 "brightness": dict(s["brightness"])} for n, s in self._selection.items()]

    def _resize(self, image: torch.Tensor) -> torch.Tensor:
        """MATLAB bicubic resize of an 8-bit image so that its long side is `hr_long_side`."""
        height, width = image.shape[-2:]
        ratio = self.hr_long_side / max(height, width)
        size = (max(1, math.floor(height * ratio + 0.5)), max(1, math.floor(width * ratio + 0.5)))
        resized = imresize_uint8(torch.from_numpy(quantize(image)), size=size)
        return resized.float() / 255.0

    def _load(self, name: str) -> Scene:
        chosen = self.select_extremes(name)
        folder, label_dir = self._sequence(name)
        label_path = find_image(label_dir, folder.name)
        files = {"over": chosen["over"], "under": chosen["under"], "gt": label_path}
        over, under, gt = (read_image(files[key]) for key in ("over", "under", "gt"))
        check_same_size({str(p): tuple(t.shape[-2:]) for p, t in zip(files.values(), (over, under, gt))},
                        f"SICE scene {name!r}")
        info = {"dataset": "sice", "files": {k: str(v) for k, v in files.items()},
                "brightness": chosen["brightness"], "hr_long_side": self.hr_long_side}
        if self.hr_long_side:
            over, under, gt = self._resize(over), self._resize(under), self._resize(gt)
        return scene_from_hr(name, over, under, gt, self.scale, info, files)
