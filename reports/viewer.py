"""The interactive comparison viewer of a report (`<report>/viewer.html`).

The page is our own small JavaScript (`reports/static/viewer.js`, `viewer.css`, copied beside it) and
reads one data file, `viewer_data.js` (`window.VIEWER_DATA`, a plain script so that it loads from
file:// without a server): the methods in Table 1's order, the metrics as the report prints them,
and per scale every scene with its size, the relative URLs of its inputs, ground truth and method
outputs (the published images under `images/`, never copied or embedded), their thumbnails and the
scene's scores. The browser loads only the images it shows.

Pages link into the viewer with a URL fragment, each value percent-encoded and methods separated by
commas: `viewer.html#scale=2&scene=...&methods=...` (Table 1's values, the per-image table's methods).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from urllib.parse import quote

from PIL import Image

from reports.data import ReportData
from reports.figure3 import image_path
from reports.render import render_html
from reports.thumbnails import ensure_thumbnail

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = ("viewer.js", "viewer.css")
INPUT_ROLES = ("over", "under", "gt")


def relative_url(path: Path, start: Path) -> str:
    """A URL for `path` relative to the folder `start`, every segment percent-encoded (a file URI
    when no relative path exists, e.g. another drive)."""
    try:
        relative = os.path.relpath(path.resolve(), start.resolve())
    except ValueError:
        return path.resolve().as_uri()
    return "/".join(quote(part, safe="") for part in Path(relative).parts)


def _number(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _size(path: Path) -> list[int]:
    with Image.open(path) as image:   # reads the header only
        return [image.height, image.width]


def scene_entry(data: ReportData, scale: int, scene: str, scores, metrics, output: Path, thumbs_dir: Path) -> dict:
    """One scene of the viewer's data: sizes, image and thumbnail URLs, scores per method."""
    images_dir = data.images_dir
    inputs, input_thumbs = {}, {}
    for role in INPUT_ROLES:
        path = image_path(images_dir, scale, f"_scene/{role}", scene)
        inputs[role] = relative_url(path, output) if path else None
        input_thumbs[role] = relative_url(ensure_thumbnail(path, images_dir, thumbs_dir), output) if path else None
    images, thumbs, hr_size = {}, {}, None
    for method in data.methods:
        path = image_path(images_dir, scale, method, scene)
        if path is None:
            continue
        images[method] = relative_url(path, output)
        thumbs[method] = relative_url(ensure_thumbnail(path, images_dir, thumbs_dir), output)
        hr_size = hr_size or _size(path)
    gt = image_path(images_dir, scale, "_scene/gt", scene)
    hr_size = _size(gt) if gt else hr_size
    over = image_path(images_dir, scale, "_scene/over", scene)
    lr_size = _size(over) if over else ([hr_size[0] // scale, hr_size[1] // scale] if hr_size else None)
    table = {}
    for method in data.methods:
        if (scene, method) in scores.index:
            row = scores.loc[(scene, method)]
            table[method] = {m.name: _number(row[m.name]) for m in metrics}
    return {"name": scene, "size": hr_size, "lr_size": lr_size, "inputs": inputs, "input_thumbs": input_thumbs,
            "images": images, "thumbs": thumbs, "scores": table}


def viewer_data(data: ReportData, output: Path, convention: str, protocol: str, title: str) -> dict:
    """`window.VIEWER_DATA` for the report at `output` (thumbnails made where missing or stale)."""
    metrics = data.table1_metrics
    thumbs_dir = output / "thumbs"
    scenes = {}
    for scale in data.scales:
        scores = data.main_scores(scale, convention, metrics)
        scenes[str(scale)] = [scene_entry(data, scale, scene, scores, metrics, output, thumbs_dir)
                              for scene in data.scenes(scale)]
    methods = []
    for name in data.methods:
        info = data.grid.get(name)
        methods.append({"name": name, "order": info.order if info else "",
                        "components": list(info.components) if info else [name]})
    return {"version": 1, "title": title, "protocol": protocol, "demo_weights": data.demo_weights,
            "convention": convention,
            "metrics": [{"name": m.name, "label": m.label, "unit": m.unit.strip(), "higher_is_better": m.higher_is_better,
                         "decimals": m.decimals} for m in metrics],
            "methods": methods, "reference": data.reference, "scales": data.scales, "scenes": scenes}


def write_viewer(data: ReportData, output: Path, convention: str, common: dict, written: list[Path]) -> Path:
    """Write `viewer.html`, `viewer_data.js` and the viewer's script and style into `output`."""
    title = f"Comparison viewer: {common.get('profile', '?')} profile"
    payload = viewer_data(data, output, convention, common.get("protocol", ""), title)
    script = "window.VIEWER_DATA = " + json.dumps(payload, ensure_ascii=True, allow_nan=False) + ";\n"
    data_file = output / "viewer_data.js"
    data_file.write_text(script, encoding="utf-8")
    written.append(data_file)
    for name in STATIC_FILES:
        shutil.copyfile(STATIC / name, output / name)
        written.append(output / name)
    page = output / "viewer.html"
    page.write_text(render_html("viewer.html.j2", title=title, **common), encoding="utf-8")
    written.append(page)
    return page
