"""Publishing a run's images under its output folder: every method's final image of every scene
(`images/x<s>/<method>/<scene>.png`) and the scene's inputs and references
(`images/x<s>/_scene/<role>/<scene>.png`), for the reports.

Every write is atomic (unique temporary name, then rename), so a kill or a concurrent run never
leaves a missing or partial image, and no scene or method name can point outside the folder.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from cfanet.data.scene import DatasetError, Scene, check_scene_name

SCENE_ROLES = ("over", "under", "gt", "gt_over", "gt_under")


class Publisher:
    """Writes under `output_dir`; final images come from the stage cache at `cache_root`."""

    def __init__(self, output_dir: str | os.PathLike, cache_root: str | os.PathLike):
        self.output_dir = Path(output_dir)
        self.cache_root = Path(cache_root)

    def output_path(self, *parts: str) -> Path:
        """`output_dir / parts...`, refusing any part that is not a plain file or folder name, so
        that no scene or method name can point outside the output folder."""
        for part in parts:
            if part in ("", ".", "..") or "/" in part or "\\" in part or "\x00" in part:
                raise DatasetError(f"{part!r}: not usable as a file name under the output folder {self.output_dir}")
        target = self.output_dir.joinpath(*parts)
        root = os.path.normpath(os.path.abspath(self.output_dir))
        if os.path.commonpath([root, os.path.normpath(os.path.abspath(target))]) != root:
            raise DatasetError(f"{target}: refusing to write outside the output folder {root}")
        return target

    def publish_scene(self, scene: Scene, scale: int) -> None:
        """The scene's LR inputs and HR references as 8-bit PNGs under `images/x<scale>/_scene/`,
        for figures (written once; the folder name cannot clash with a method name)."""
        from cfanet.images import write_image

        check_scene_name(scene.name, "scene")
        for role in SCENE_ROLES:
            image = getattr(scene, role)
            target = self.output_path("images", f"x{scale}", "_scene", role, f"{scene.name}.png")
            if image is not None and not target.exists():
                write_image(target, image)  # atomic

    def publish(self, cache_key: str, target: Path) -> None:
        """Put a final image under the output folder (a hard link to the cache entry when possible),
        atomically: linked or copied to a unique temporary name, then renamed over the target."""
        source = self.cache_root / cache_key[:2] / f"{cache_key}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if os.path.samefile(source, target):
                return
        except OSError:
            pass
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            try:
                os.link(source, tmp)
            except OSError:
                shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def publish_final(self, cache_key: str, scale: int, method: str, scene: str) -> Path:
        """A method's final image of a scene at `images/x<scale>/<method>/<scene>.png`."""
        target = self.output_path("images", f"x{scale}", method, f"{scene}.png")
        self.publish(cache_key, target)
        return target
