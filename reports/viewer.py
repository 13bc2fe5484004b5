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


class ImageLocator:
    """The published images of one report and their URLs, with every folder resolved once (a report
    of 589 scenes x 34 methods looks up some 20,000 images).

    `find(scale, folder, scene)` is `images/x<scale>/<folder>/<scene>.png` when that file exists and
    lies inside the folder (a scene named `../x` never reaches another one), as `reports.figure3.image_path`;
    `url` and `thumbnail_url` are relative to the report folder, every segment percent-encoded."""

    def __init__(self, images_dir: Path, output: Path):
        self.images = Path(os.path.realpath(images_dir))
        self.output = Path(os.path.realpath(output))
        self.thumbs = self.output / "thumbs"
        self._images_url = relative_url(self.images, self.output)
        self._roots: dict[tuple[int, str], str] = {}

    def find(self, scale: int, folder: str, scene: str) -> Path | None:
        root = self._roots.get((scale, folder))
        if root is None:
            root = self._roots[(scale, folder)] = os.path.realpath(self.images / f"x{scale}" / folder)
        path = os.path.normpath(os.path.join(root, f"{scene}.png"))
        return Path(path) if path.startswith(root + os.sep) and os.path.isfile(path) else None

    def url(self, path: Path) -> str:
        parts = path.relative_to(self.images).parts
        return "/".join([self._images_url, *(quote(part, safe="") for part in parts)])

    def thumbnail_url(self, path: Path) -> str:
        thumbnail = ensure_thumbnail(path, self.images, self.thumbs)
        return "/".join(["thumbs", *(quote(part, safe="") for part in thumbnail.relative_to(self.thumbs).parts)])


def scene_entry(locator: ImageLocator, scale: int, scene: str, methods: list[str], scores: dict,
                metrics) -> dict:
    """One scene of the viewer's data: sizes, image and thumbnail URLs, scores per method (`scores`:
    {(scene, method): {metric: value}})."""
    inputs, input_thumbs, found = {}, {}, {}
    for role in INPUT_ROLES:
        found[role] = path = locator.find(scale, f"_scene/{role}", scene)
        inputs[role] = locator.url(path) if path else None
        input_thumbs[role] = locator.thumbnail_url(path) if path else None
    images, thumbs, hr_size = {}, {}, None
    for method in methods:
        path = locator.find(scale, method, scene)
        if path is None:
            continue
        images[method] = locator.url(path)
        thumbs[method] = locator.thumbnail_url(path)
        hr_size = hr_size or (None if found["gt"] else _size(path))
    hr_size = _size(found["gt"]) if found["gt"] else hr_size
    over = found["over"]
    lr_size = _size(over) if over else ([hr_size[0] // scale, hr_size[1] // scale] if hr_size else None)
    table = {method: {m.name: _number(values[m.name]) for m in metrics}
             for method in methods if (values := scores.get((scene, method))) is not None}
    return {"name": scene, "size": hr_size, "lr_size": lr_size, "inputs": inputs, "input_thumbs": input_thumbs,
            "images": images, "thumbs": thumbs, "scores": table}


def viewer_data(data: ReportData, output: Path, convention: str, protocol: str, title: str) -> dict:
    """`window.VIEWER_DATA` for the report at `output` (thumbnails made where missing or stale)."""
    metrics = data.table1_metrics
    locator = ImageLocator(data.images_dir, output)
    names = data.methods
    scenes = {}
    for scale in data.scales:
        scores = data.main_scores(scale, convention, metrics).to_dict("index")
        scenes[str(scale)] = [scene_entry(locator, scale, scene, names, scores, metrics)
                              for scene in data.scenes(scale)]
    methods = []
    for name in names:
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
