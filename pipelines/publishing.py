"""Publishing a run's images under its output folder: every method's final image of every scene
(`images/x<s>/<method>/<scene>.png`) and the scene's inputs and references
(`images/x<s>/_scene/<role>/<scene>.png`), for the reports.

Every write is atomic (unique temporary name, then rename), so a kill or a concurrent run never
leaves a missing or partial image, and no scene or method name can point outside the folder. The
temporary file is removed on every path out, so concurrent publishers of one target leave none.

Published images are kept up to date, not only written once: a scene image is rewritten whenever
the PNG bytes it would have now differ from the file's (the scene's images changed, the demo
`hr_size` changed, or the published file was damaged), and a final image is replaced whenever it is
not the cache entry. Final images are copies of the cache entries (the default, `link=False`) or hard links where
possible (`link=True`: no second copy of every image of every method). A hard link shares
the entry's bytes, so an edit of a published image changes the entry too; the stage cache catches
that on its next read (each entry's SHA-256 is checked, `pipelines.cache`), drops the entry with a
warning and the runner computes it again, so no later run reads or republishes the edited image.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

from cfanet.atomic import write_bytes_atomic
from cfanet.data.scene import DatasetError, Scene, check_scene_name
from pipelines.cache import encode_png

SCENE_ROLES = ("over", "under", "gt", "gt_over", "gt_under")


class Publisher:
    """Writes under `output_dir`; final images come from the stage cache at `cache_root`."""

    def __init__(self, output_dir: str | os.PathLike, cache_root: str | os.PathLike, *, link: bool = False):
        self.output_dir = Path(output_dir)
        self.cache_root = Path(cache_root)
        self.link = link  # final images as hard links to the cache entries (else copies)

    def output_path(self, *parts: str) -> Path:
        """`output_dir / parts...`, refusing any part that is not a plain file or folder name (a
        `/` inside a part separates folder levels: the scene `Part1/12` of a dataset with parts), so
        that no scene or method name can point outside the output folder."""
        components = [c for part in parts for c in part.split("/")]  # a part's scene: Part1/12.png
        for part in components:
            if part in ("", ".", "..") or "\\" in part or "\x00" in part:
                raise DatasetError(f"{'/'.join(parts)!r}: not usable as a file name under the output folder "
                                   f"{self.output_dir}")
        target = self.output_dir.joinpath(*components)
        root = os.path.normpath(os.path.abspath(self.output_dir))
        if os.path.commonpath([root, os.path.normpath(os.path.abspath(target))]) != root:
            raise DatasetError(f"{target}: refusing to write outside the output folder {root}")
        return target

    def publish_scene(self, scene: Scene, scale: int) -> None:
        """The scene's LR inputs and HR references as 8-bit PNGs under `images/x<scale>/_scene/`,
        for figures (the folder name cannot clash with a method name). A file is (re)written when
        missing or when its bytes differ from the PNG of the scene's current image: changed inputs,
        a changed demo `hr_size` or a damaged file never leave old images next to new outputs."""
        check_scene_name(scene.name, "scene")
        for role in SCENE_ROLES:
            image = getattr(scene, role)
            if image is None:
                continue
            target = self.output_path("images", f"x{scale}", "_scene", role, f"{scene.name}.png")
            data, _ = encode_png(image)
            if _same_bytes(target, data):
                continue
            write_bytes_atomic(target, data)  # atomic; its temporary file never stays behind

    def publish(self, cache_key: str, target: Path) -> None:
        """Put a final image under the output folder, atomically: a hard link to the cache entry
        (or a copy, with `link=False` or where linking fails) made under a unique temporary name,
        then renamed over the target. Nothing is written when the target already is the entry (the
        same file, or with `link=False` a file of the same bytes). The temporary name is removed
        on every path out: renaming a hard link onto another link of the same file does nothing and
        leaves the source name behind, which concurrent publishers of one target used to hit."""
        source = self.cache_root / cache_key[:2] / f"{cache_key}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            same_file = os.path.samefile(source, target)
        except OSError:
            same_file = False
        if self.link:
            if same_file:
                return
        elif not same_file:
            data = source.read_bytes()
            if not _same_bytes(target, data):
                write_bytes_atomic(target, data)
            return
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            linked = False
            if self.link:
                try:
                    os.link(source, tmp)
                    linked = True
                except OSError:
                    pass
            if not linked:
                shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def publish_final(self, cache_key: str, scale: int, method: str, scene: str) -> Path:
        """A method's final image of a scene at `images/x<scale>/<method>/<scene>.png`."""
        target = self.output_path("images", f"x{scale}", method, f"{scene}.png")
        self.publish(cache_key, target)
        return target


def _same_bytes(path: Path, data: bytes) -> bool:
    """Whether `path` is a regular file holding exactly `data` (False when missing or unreadable)."""
    try:
        return path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False
