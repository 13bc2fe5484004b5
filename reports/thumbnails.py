"""Small JPEG previews of published images for the viewer's overviews, made once per image.

A thumbnail lives in the report folder (`<report>/thumbs/<path of the image under images/>.jpg`;
the results folder is never written by a report) and is remade only when it is missing or older
than its image, so re-rendering a report of 589 scenes x 34 methods costs a `stat` per image.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from PIL import Image

THUMBNAIL_SIDE = 192     # longest side, pixels
JPEG_QUALITY = 85


def thumbnail_path(image: Path, images_dir: Path, thumbs_dir: Path) -> Path:
    """Where `image` (a file under `images_dir`) has its thumbnail: the same relative path under
    `thumbs_dir`, with a `.jpg` suffix. An image outside `images_dir` is a ValueError."""
    relative = Path(os.path.abspath(image)).relative_to(os.path.abspath(images_dir))   # lexical: cheap per image
    return thumbs_dir / relative.with_suffix(".jpg")


def ensure_thumbnail(image: Path, images_dir: Path, thumbs_dir: Path, side: int = THUMBNAIL_SIDE) -> Path:
    """The thumbnail of `image`, written (atomically) when missing or older than the image."""
    target = thumbnail_path(image, images_dir, thumbs_dir)
    try:
        if target.stat().st_mtime_ns >= image.stat().st_mtime_ns:
            return target
    except FileNotFoundError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(image) as opened:
        preview = opened.convert("RGB")
    preview.thumbnail((side, side), Image.Resampling.BOX)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    try:
        preview.save(temporary, format="JPEG", quality=JPEG_QUALITY)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target
