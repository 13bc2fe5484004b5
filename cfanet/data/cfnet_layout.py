"""The CF-Net folder layout (ytZhang99/CF-Net): `lr_over/`, `lr_under/`, `hr/` (or `gt/`),
`hr_over/`, `hr_under/`, one file per scene in each, paired **by file name**.

CF-Net's own loader pairs folders by sorted index, which silently mis-pairs when a folder has an
extra file; this one pairs by name and refuses mismatched sets. When the HR exposures are present,
the LR inputs are regenerated from them (modcrop + MATLAB bicubic). The official sample's shipped
LR files are that resize cropped further to a smaller size (208x372 for an 844x1500 HR), so they
no longer pair pixel for pixel with the HR images. Set `use_shipped_lr=True` to use them as they
are (their HR references must then be exactly `scale` times larger). A folder with only `lr_over/` and `lr_under/` (CF-Net's `test_data`) gives scenes without
HR references.
"""

from __future__ import annotations

from pathlib import Path

from cfanet.data.base import SceneDataset
from cfanet.data.degrade import check_same_size, scene_from_hr
from cfanet.data.folders import find_child, image_files
from cfanet.data.scene import DatasetError, Scene
from cfanet.images import read_image

FOLDERS = ("lr_over", "lr_under", "hr", "gt", "hr_over", "hr_under")


class CfnetLayoutDataset(SceneDataset):
    kind = "cfnet"

    def __init__(self, root: str | Path, scale: int, use_shipped_lr: bool = False, split_file: Path | None = None):
        super().__init__(scale, split_file)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: CF-Net layout folder not found")
        self.folders = {name: find_child(self.root, name) for name in FOLDERS}
        self.folders = {k: v for k, v in self.folders.items() if v is not None and v.is_dir()}
        if "hr" in self.folders and "gt" in self.folders:
            raise DatasetError(f"{self.root}: both hr/ and gt/ exist; keep one ground-truth folder")
        self.gt_folder = self.folders.get("hr") or self.folders.get("gt")
        self.has_hr_exposures = "hr_over" in self.folders and "hr_under" in self.folders
        self.use_shipped_lr = use_shipped_lr or not self.has_hr_exposures
        needed = ["lr_over", "lr_under"] if self.use_shipped_lr else ["hr_over", "hr_under"]
        absent = [n for n in needed if n not in self.folders]
        if absent:
            raise DatasetError(f"{self.root}: missing folder(s) {', '.join(absent)} (CF-Net layout: {', '.join(FOLDERS)})")
        self.files = {name: image_files(folder) for name, folder in self.folders.items()}

    def _all_names(self) -> list[str]:
        used = [n for n in ("lr_over", "lr_under", "hr_over", "hr_under") if n in self.files
                and (self.use_shipped_lr or not n.startswith("lr_"))]
        if self.gt_folder is not None:
            used.append("hr" if "hr" in self.files else "gt")
        sets = {n: set(self.files[n]) for n in used}
        union = set().union(*sets.values())
        problems = [f"{n}/ lacks {', '.join(sorted(union - s)[:5])}" for n, s in sets.items() if union - s]
        if problems:
            raise DatasetError(f"{self.root}: folders do not hold the same scene names: " + "; ".join(problems))
        if not union:
            raise DatasetError(f"{self.root}: no images found")
        return sorted(union)

    def _load(self, name: str) -> Scene:
        gt_key = "hr" if "hr" in self.files else "gt"
        gt_path = self.files[gt_key][name] if self.gt_folder is not None else None
        gt = read_image(gt_path) if gt_path else None
        info = {"dataset": "cfnet", "root": str(self.root)}
        if not self.use_shipped_lr:
            paths = {"over": self.files["hr_over"][name], "under": self.files["hr_under"][name], "gt": gt_path}
            info["files"] = {k: str(v) for k, v in paths.items() if v}
            info["lr"] = "regenerated from hr_over/hr_under (modcrop + MATLAB bicubic)"
            return scene_from_hr(name, read_image(paths["over"]), read_image(paths["under"]), gt,
                                 self.scale, info, paths)
        lr_paths = {"over": self.files["lr_over"][name], "under": self.files["lr_under"][name]}
        over, under = read_image(lr_paths["over"]), read_image(lr_paths["under"])
        check_same_size({str(p): tuple(t.shape[-2:]) for p, t in zip(lr_paths.values(), (over, under))},
                        f"scene {name!r}")
        hr = {k: read_image(self.files[f"hr_{k}"][name]) if self.has_hr_exposures else None for k in ("over", "under")}
        expected = (over.shape[-2] * self.scale, over.shape[-1] * self.scale)
        for key, image, path in (("gt", gt, gt_path), ("gt_over", hr["over"], None), ("gt_under", hr["under"], None)):
            if image is not None and tuple(image.shape[-2:]) != expected:
                where = path or self.files[key.replace("gt_", "hr_")][name]
                raise DatasetError(f"{where}: HR size {tuple(image.shape[-2:])} is not x{self.scale} of the LR size "
                                   f"{tuple(over.shape[-2:])} of {lr_paths['over']}")
        info["files"] = {k: str(v) for k, v in lr_paths.items()}
        info["lr"] = "shipped lr_over/lr_under files"
        return Scene(name=name, over=over, under=under, gt=gt, gt_over=hr["over"], gt_under=hr["under"],
                     scale=self.scale, info=info)
