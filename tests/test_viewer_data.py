"""The comparison viewer's data and thumbnails (reports/viewer.py, reports/thumbnails.py), without a
browser (tests/test_viewer_browser.py drives the page itself)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image

from reports.build import build_report
from reports.data import load_report_data
from reports.thumbnails import THUMBNAIL_SIDE, ensure_thumbnail
from reports.viewer import relative_url
from test_reports import build_fixture


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    fixture = build_fixture(root)
    output = root / "report"
    build_report(fixture["database"], output, profile="demo", dataset="the fixture scenes", n_resamples=200)
    return {"root": root, "output": output, "database": fixture["database"]}


def viewer_payload(output: Path) -> dict:
    text = (output / "viewer_data.js").read_text(encoding="utf-8")
    prefix = "window.VIEWER_DATA = "
    assert text.startswith(prefix) and text.rstrip().endswith(";")
    return json.loads(text[len(prefix):].rstrip().rstrip(";"))


def test_every_url_is_a_published_image_outside_the_report_and_scores_match_the_database(rendered):
    output, images = rendered["output"], (rendered["root"] / "images").resolve()
    payload = viewer_payload(output)
    data = load_report_data(rendered["database"], profile="demo")
    assert payload["scales"] == data.scales and [m["name"] for m in payload["methods"]] == data.methods
    assert [m["name"] for m in payload["metrics"]] == [m.name for m in data.table1_metrics]
    for scale in data.scales:
        scenes = payload["scenes"][str(scale)]
        assert [s["name"] for s in scenes] == data.scenes(scale)
        scores = data.main_scores(scale, "paper", data.table1_metrics)
        for scene in scenes:
            urls = [*scene["images"].values(), *(u for u in scene["inputs"].values() if u)]
            for url in urls:
                target = (output / unquote(url)).resolve()
                assert target.is_file() and target.is_relative_to(images / f"x{scale}"), url
            for url in [*scene["thumbs"].values(), *(u for u in scene["input_thumbs"].values() if u)]:
                assert (output / unquote(url)).resolve().is_relative_to((output / "thumbs").resolve()), url
            if scene["images"]:
                assert scene["size"] == [Image.open(output / unquote(next(iter(scene["images"].values())))).height,
                                         Image.open(output / unquote(next(iter(scene["images"].values())))).width]
            for method, values in scene["scores"].items():
                for metric, value in values.items():
                    expected = float(scores.loc[(scene["name"], method), metric])
                    assert (value is None and math.isnan(expected)) or value == pytest.approx(expected, abs=0)
    # "../evil" has no images of its own and its name never reaches another folder
    evil = next(s for s in payload["scenes"][str(data.scales[0])] if s["name"] == "../evil")
    assert evil["images"] == {} and evil["inputs"] == {"over": None, "under": None, "gt": None}
    # nothing is copied or embedded: no file of the report has a published image's bytes
    published = {hashlib.sha256(p.read_bytes()).hexdigest() for p in images.rglob("*.png")}
    assert not [p for p in output.rglob("*") if p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() in published]
    assert all("data:image" not in p.read_text(encoding="utf-8") for p in output.glob("*.html"))


def test_table1_values_and_per_image_methods_link_into_the_viewer(rendered):
    table = (rendered["output"] / "table1_x2.html").read_text(encoding="utf-8")
    assert 'href="viewer.html#scale=2&amp;methods=RCAN%2BMGFF"' in table
    per_image = (rendered["output"] / "per_image.html").read_text(encoding="utf-8")
    assert 'href="viewer.html#scale=2&amp;scene=%3Cb%3Ex%3C/b%3E&amp;methods=RCAN%2BMGFF"' in per_image
    assert 'href="viewer.html"' in (rendered["output"] / "index.html").read_text(encoding="utf-8")


def test_thumbnails_are_made_once_and_remade_when_their_image_changes(tmp_path):
    images, thumbs = tmp_path / "images", tmp_path / "report" / "thumbs"
    source = images / "x2" / "A+B" / "Part1" / "12.png"
    source.parent.mkdir(parents=True)
    Image.new("RGB", (400, 300), (200, 10, 10)).save(source)
    made = ensure_thumbnail(source, images, thumbs)
    assert made == thumbs / "x2" / "A+B" / "Part1" / "12.jpg"
    with Image.open(made) as image:
        assert max(image.size) == THUMBNAIL_SIDE and image.getpixel((5, 5))[0] > 150
    stamp = made.stat().st_mtime_ns
    assert ensure_thumbnail(source, images, thumbs).stat().st_mtime_ns == stamp   # not remade
    time.sleep(0.01)
    Image.new("RGB", (400, 300), (10, 10, 200)).save(source)
    os.utime(source, ns=(stamp + 10**9, stamp + 10**9))
    with Image.open(ensure_thumbnail(source, images, thumbs)) as image:
        assert image.getpixel((5, 5))[2] > 150
    with pytest.raises(ValueError):
        ensure_thumbnail(tmp_path / "elsewhere.png", images, thumbs)


def test_relative_urls_encode_every_segment(tmp_path):
    target = tmp_path / "images" / "x2" / "A+B#?" / "a b%.png"
    assert relative_url(target, tmp_path / "report") == "../images/x2/A%2BB%23%3F/a%20b%25.png"
