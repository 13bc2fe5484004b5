"""The unit every dataset yields: one multi-exposure scene at one scale."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Scene:
    """One scene: LR exposures in, HR references out; all float32 RGB (1, 3, H, W) in [0, 1].

    `over`/`under` are the low-resolution inputs (H, W); `gt` is the well-exposed high-resolution
    ground truth and `gt_over`/`gt_under` the high-resolution exposures (scale*H, scale*W), which are
    the reference sequence of MEF-SSIM. Any of the three HR images may be None when a dataset has
    no such image. `info` records provenance (source files, chosen exposures, brightness).
    """

    name: str
    over: torch.Tensor
    under: torch.Tensor
    gt: torch.Tensor | None
    gt_over: torch.Tensor | None
    gt_under: torch.Tensor | None
    scale: int
    info: dict = field(default_factory=dict)

    def astuple(self):
        """`(name, over, under, gt, gt_over, gt_under)`."""
        return self.name, self.over, self.under, self.gt, self.gt_over, self.gt_under


class DatasetError(ValueError):
    """A dataset folder is malformed; the message names the folder or file."""


# Longest scene name in UTF-8 bytes: outputs are `<scene>.png` and most file systems allow 255 bytes.
MAX_SCENE_NAME_BYTES = 200


def scene_name_problem(name: str) -> str | None:
    """Why `name` cannot be used as a file name in the outputs (`images/x2/<method>/<name>.png`),
    or None when it can.

    A scene of a dataset with several parts is named `<part>/<scene>` (SICE: `Part1/12`), which
    becomes one sub-folder level in the outputs; every `/`-separated component must itself be a
    plain file name. Backslashes, empty components (`a//b`, `/a`), `.`/`..`, hidden (`.x`)
    components, control characters and over-long names are refused, so no scene name can point
    outside the output folder; HTML characters are allowed (reports escape them)."""
    if not isinstance(name, str) or not name:
        return "empty name"
    for char, label in (("\\", "'\\'"), ("\x00", "NUL")):
        if char in name:
            return f"contains the path character {label}"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains a control character"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8, decoded by the file system as surrogates
        return "its bytes are not valid UTF-8"
    for component in name.split("/"):
        if not component:
            return "an empty path component ('/' only separates a part from a scene, as in Part1/12)"
        if component in (".", ".."):
            return "a relative path component"
        if component.startswith("."):
            return "starts with '.' (a hidden file name)"
    if len(name.encode("utf-8")) > MAX_SCENE_NAME_BYTES:
        return f"longer than {MAX_SCENE_NAME_BYTES} bytes"
    return None


def check_scene_name(name: str, where: str) -> str:
    """`name`, or `DatasetError` naming `where` when it cannot be a file name in the outputs."""
    problem = scene_name_problem(name)
    if problem:
        raise DatasetError(f"{where}: scene name {name!r} cannot be used in output file names ({problem}); "
                           f"rename that file or folder")
    return name
