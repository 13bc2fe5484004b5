"""A plain folder of HR `over`/`under`/`gt` triples, in either of two common layouts:

* one folder per scene holding `over.<ext>`, `under.<ext>` and `gt.<ext>` (the scene name is the
  folder name);
* three folders `over/`, `under/`, `gt/` holding one file per scene, paired by file name.

The LR inputs are made from the HR exposures (modcrop + MATLAB bicubic). `gt` may be absent in a
scene folder (then PSNR/SSIM cannot be computed for it; MEF-SSIM still can).
"""

from __future__ import annotations

from pathlib import Path

from cfanet.data.base import SceneDataset
from cfanet.data.degrade import scene_from_hr
from cfanet.data.folders import find_child, find_image, image_files, list_folder
from cfanet.data.scene import DatasetError, Scene
from cfanet.images import read_image


class TriplesDataset(SceneDataset):
    kind = "triples"

    def __init__(self, root: str | Path, scale: int, split_file: Path | None = None):
        super().__init__(scale, split_file)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: folder not found")
        folders = {k: find_child(self.root, k) for k in ("over", "under", "gt")}
        self.by_folder = all(f is not None and f.is_dir() for f in (folders["over"], folders["under"]))
        self.folders = folders

    def _paths(self, name: str) -> dict[str, Path | None]:
        if self.by_folder:
            return {k: (find_image(self.folders[k], name) if self.folders[k] else None) for k in ("over", "under", "gt")}
        return {k: find_image(self.root / name, k) for k in ("over", "under", "gt")}

    def _all_names(self) -> list[str]:
        if self.by_folder:
            sets = {k: set(image_files(self.folders[k])) for k in ("over", "under", "gt") if self.folders[k]}
            union = set().union(*sets.values())
            problems = [f"{k}/ lacks {', '.join(sorted(union - s)[:5])}" for k, s in sets.items() if union - s]
            if problems:
                raise DatasetError(f"{self.root}: over/under/gt folders do not hold the same names: " + "; ".join(problems))
            names = sorted(union)
        else:
            names = []
            for folder in (p for p in list_folder(self.root) if p.is_dir() and not p.name.startswith(".")):
                has = {k: find_image(folder, k) is not None for k in ("over", "under")}
                if all(has.values()):
                    names.append(folder.name)
                elif any(has.values()):
                    raise DatasetError(f"{folder}: has {'over' if has['over'] else 'under'} but not "
                                       f"{'under' if has['over'] else 'over'}")
        if not names:
            raise DatasetError(f"{self.root}: no over/under triples found (expected over/, under/, gt/ folders "
                               f"or one folder per scene with over.*, under.*, gt.*)")
        return names

    def _load(self, name: str) -> Scene:
        paths = self._paths(name)
        gt = read_image(paths["gt"]) if paths["gt"] else None
        info = {"dataset": "triples", "files": {k: str(v) for k, v in paths.items() if v}}
        return scene_from_hr(name, read_image(paths["over"]), read_image(paths["under"]), gt, self.scale, info, paths)
