"""The report's comparison viewer (`<report>/viewer.html`) in a real headless Chromium.

The report is rendered from `test_reports.build_fixture`'s results folder (two scales, four scenes,
one of them named "../evil", 34 methods, tiny PNGs) and opened from file:// with the project's own
CDP driver (`tests/browser.py`). The viewer is driven with real input events (clicks, wheel, drags,
keys) and judged from the DOM, computed styles and `window.viewer.state()`; the scores it prints are
compared with values read from the results database here, not through the report's code.

Skipped when no Chromium is on PATH, except under CI, where that fails. Screenshots of each step go
to $CFANET_TEST_ARTIFACTS (else the test's tmp_path); their paths are printed.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote, unquote, urlsplit

import numpy as np
import pytest
from PIL import Image

from browser import Browser, find_chromium
from official_code import in_ci
from test_reports import OFFICIAL, PIPELINES, SCALES, SCENES, build_fixture

WIDE, TALL = 1400, 1000


# -- fixtures -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        message = "no Chromium on PATH (chromium, chromium-browser, google-chrome, google-chrome-stable)"
        if in_ci():
            pytest.fail(message + ": CI must run the viewer's browser test")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def built(chromium, tmp_path_factory):
    """The fixture's results folder and its report."""
    from reports.build import build_report

    root = tmp_path_factory.mktemp("results")
    database = build_fixture(root)["database"]
    output = tmp_path_factory.mktemp("out") / "report"
    build_report(database, output, profile="demo", dataset="the fixture scenes", n_resamples=200)
    return SimpleNamespace(root=root, output=output, database=database, images=(root / "images").resolve())


@pytest.fixture(scope="module")
def browser(chromium):
    with Browser(chromium, WIDE, TALL) as browser:
        browser.new_page("about:blank", WIDE, TALL)
        yield browser


@pytest.fixture
def artifacts(tmp_path) -> Path:
    folder = Path(os.environ.get("CFANET_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def viewer(browser, built):
    page = Viewer(browser, built)
    yield page
    # every test ends without a console error or an uncaught exception
    assert not browser.errors, browser.errors


def shot(browser, folder: Path, name: str) -> Path:
    path = browser.screenshot(folder / name)
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.std() > 5, f"{path} is blank"
    print(f"screenshot: {path}")
    return path


def database_scores(database: Path, scale: int, scene: str) -> dict[str, dict[str, float]]:
    """{method: {metric: value}} of one scene as the report selects them (per method, its latest
    finished run; the convention `paper`, `official` for the convention-independent metrics), read
    with sqlite3 alone."""
    with sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT r.method, r.metric, r.convention, r.value, runs.started FROM results r JOIN runs USING (run_id) "
            "WHERE runs.status = 'finished' AND r.scene = ?", (f"x{scale}/{scene}",)).fetchall()
    latest = {}
    for method, _, _, _, started in rows:
        latest[method] = max(latest.get(method, started), started)
    scores: dict[str, dict[str, float]] = {}
    for method, metric, convention, value, started in rows:
        if started == latest[method] and convention == ("official" if metric in OFFICIAL else "paper"):
            scores.setdefault(method, {})[metric] = value
    return scores


def url_path(url: str) -> Path:
    """The local file a file:// URL names."""
    parts = urlsplit(url)
    assert parts.scheme == "file", url
    return Path(unquote(parts.path)).resolve()


def encoded(path: str) -> str:
    return "/".join(quote(part, safe="") for part in path.split("/"))


# -- page helpers -------------------------------------------------------------------------------------

PANELS_JS = """[...document.querySelectorAll('#panels .panel')].map(p => {
  const img = p.querySelector('.panel-viewport > .panel-content img.panel-image');
  const content = p.querySelector('.panel-viewport > .panel-content');
  const view = p.querySelector('.panel-viewport');
  const box = e => { if (!e) return null; const r = e.getBoundingClientRect();
                     return {left: r.left, top: r.top, right: r.right, bottom: r.bottom,
                             width: r.width, height: r.height}; };
  const label = p.querySelector('.panel-label');
  return {role: p.dataset.role, method: p.dataset.method || null, label: label ? label.innerText : null,
          src: img ? img.src : null, complete: img ? img.complete && img.naturalWidth > 0 : false,
          rendering: img ? getComputedStyle(img).imageRendering : null,
          transform: content ? getComputedStyle(content).transform : null,
          visible: p.getClientRects().length > 0 && getComputedStyle(p).visibility !== 'hidden',
          panel: box(p), view: box(view), image: box(img)};
})"""


class Viewer:
    """The viewer page of the built report in the module's browser."""

    def __init__(self, browser: Browser, built):
        self.browser, self.built = browser, built
        self.url = (built.output / "viewer.html").resolve().as_uri()

    def open(self, fragment: str = "", width: int = WIDE, height: int = TALL, url: str | None = None) -> None:
        b = self.browser
        b.set_viewport(width, height)
        b.navigate("about:blank")
        b.errors.clear(), b.requests.clear()
        b.navigate((url or self.url) + (f"#{fragment}" if fragment else ""))
        self.wait_ready()

    def wait_ready(self) -> None:
        self.browser.wait_for("document.body && document.body.dataset.viewerReady === '1'", timeout=10)
        self.wait_images()

    def wait_images(self) -> None:
        self.browser.wait_for("[...document.querySelectorAll('#panels img.panel-image')]"
                              ".every(i => i.complete && i.naturalWidth > 0)", timeout=10)

    def js(self, expression: str):
        return self.browser.evaluate(expression)

    def state(self) -> dict:
        return self.js("window.viewer.state()")

    @property
    def data(self) -> dict:
        return self.js("window.VIEWER_DATA")

    def panels(self) -> list[dict]:
        return self.js(PANELS_JS)

    def method_panels(self) -> list[dict]:
        return [p for p in self.panels() if p["role"] == "method"]

    def settle(self) -> None:
        """Two animation frames: what the last event changed is rendered."""
        self.js("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")

    def hash_params(self) -> dict:
        """The URL fragment's parameters, decoded."""
        return self.js("""Object.fromEntries(location.hash.slice(1).split('&').filter(Boolean).map(p => {
            const i = p.indexOf('=');
            return [decodeURIComponent(p.slice(0, i)), decodeURIComponent(p.slice(i + 1))]; }))""")

    def click_scene(self, name: str) -> None:
        self.browser.click(f"#scene-list .scene-item[data-scene={json.dumps(name)}]")
        self.settle()

    def resolve(self, url: str) -> str:
        """A URL of the viewer's data as the page resolves it."""
        return self.js(f"new URL({json.dumps(url)}, document.baseURI).href")


def expected_image(built, scale: int, method: str, scene: str) -> Path:
    return (built.images / f"x{scale}" / method / f"{scene}.png").resolve()


def metric_text(label: str, metric: dict) -> str | None:
    """The number printed after a metric's label in a panel label."""
    match = re.search(r"(?<![\w-])" + re.escape(metric["label"]) + r"\s*:?\s*(-?\d+(?:\.\d+)?|–|—|n/a)", label)
    return match.group(1) if match else None


# -- tests --------------------------------------------------------------------------------------------

def test_viewer_opens_lists_scenes_and_stays_inside_the_results_folder(viewer, built, artifacts):
    viewer.open()
    assert not viewer.browser.errors, viewer.browser.errors
    data, state = viewer.data, viewer.state()
    scale = data["scales"][0]
    assert viewer.js("[...document.querySelectorAll('#scale-select option')].map(o => Number(o.value))") == list(SCALES)
    assert data["scales"] == list(SCALES)
    assert [m["name"] for m in data["methods"]] == PIPELINES
    assert state["scale"] == scale
    items = viewer.js("[...document.querySelectorAll('#scene-list .scene-item')].map(e => e.dataset.scene)")
    assert sorted(items) == sorted(SCENES) == sorted(s["name"] for s in data["scenes"][str(scale)])
    assert viewer.js("document.querySelectorAll('#scene-list .scene-item.selected').length") == 1
    # every image URL of the data resolves inside the results folder's images/ (thumbnails: the report's)
    output = built.output.resolve()
    for key, scenes in data["scenes"].items():
        for scene in scenes:
            urls = [*scene["inputs"].values(), *scene["images"].values()]
            for url in filter(None, urls):
                path = (output / unquote(url)).resolve()
                assert path.is_relative_to(built.images / f"x{key}") and path.is_file(), (scene["name"], url)
            for url in filter(None, [*scene.get("thumbs", {}).values(), *scene.get("input_thumbs", {}).values()]):
                assert (output / unquote(url)).resolve().is_relative_to(output / "thumbs"), url
            if scene["name"] == "../evil":   # only x<s>/evil.png exists: a naive join would reach it
                assert not scene["images"] and not any(scene["inputs"].values()), scene
    # ... and so does every request the page makes, the hostile scene's included
    viewer.click_scene("../evil")
    assert viewer.state()["scene"] == "../evil"
    viewer.click_scene("<b>x</b>")
    viewer.wait_images()
    requests = list(viewer.browser.requests)
    assert any(url_path(url).is_relative_to(built.images) for url in requests if url.startswith("file:")), requests
    for url in requests:
        if url.startswith(("data:", "blob:", "about:")):
            continue
        path = url_path(url)
        assert path.is_relative_to(output) or path.is_relative_to(built.images), url
        assert path.name != "evil.png", url
    assert viewer.js("document.body.textContent").count("<b>x</b>") >= 1   # the name is text, not markup
    viewer.click_scene("alpha")
    viewer.wait_images()
    assert not viewer.browser.errors, viewer.browser.errors
    shot(viewer.browser, artifacts, "viewer_side.png")


def test_clicking_a_scene_shows_its_images_and_scores(viewer, built):
    viewer.open()
    data = viewer.data
    scale = viewer.state()["scale"]
    metrics = data["metrics"]
    assert [m["name"] for m in metrics] == ["psnr", "ssim", "mef_ssim"]
    for scene in ("<b>x</b>", "beta", "alpha"):
        viewer.click_scene(scene)
        viewer.wait_images()
        state = viewer.state()
        assert state["scene"] == scene
        assert viewer.js("[...document.querySelectorAll('#scene-list .scene-item.selected')]"
                         ".map(e => e.dataset.scene)") == [scene]
        assert viewer.hash_params()["scene"] == scene
        entry = next(s for s in data["scenes"][str(scale)] if s["name"] == scene)
        truth = database_scores(built.database, scale, scene)
        panels = viewer.method_panels()
        assert [p["method"] for p in panels] == state["methods"] and panels
        for panel in panels:
            method = panel["method"]
            expected = expected_image(built, scale, method, scene)
            suffix = f"images/x{scale}/{quote(method, safe='')}/{encoded(scene)}.png"
            assert panel["src"].endswith(suffix), panel["src"]
            assert url_path(panel["src"]) == expected and expected.is_file()
            assert panel["src"] == viewer.resolve(entry["images"][method])
            assert panel["complete"]
            assert method in panel["label"]
            for metric in metrics:
                value = truth[method][metric["name"]]
                printed = metric_text(panel["label"], metric)
                assert printed == f"{value:.{metric['decimals']}f}", (panel["label"], value)
        roles = {p["role"]: p for p in viewer.panels() if p["role"] != "method"}
        assert set(roles) == {"over", "under", "gt"}
        for role, panel in roles.items():
            assert url_path(panel["src"]) == (built.images / f"x{scale}/_scene/{role}/{scene}.png").resolve()
            assert panel["complete"]
    # [ and ] step through the list; the filter narrows it
    order = viewer.js("[...document.querySelectorAll('#scene-list .scene-item')].map(e => e.dataset.scene)")
    viewer.browser.key("[")
    viewer.settle()
    assert viewer.state()["scene"] == order[order.index("alpha") - 1]
    viewer.browser.key("]")
    viewer.settle()
    assert viewer.state()["scene"] == "alpha"
    viewer.browser.click("#scene-filter")
    for char in "bet":
        viewer.browser.key(char)
    viewer.settle()
    shown = viewer.js("[...document.querySelectorAll('#scene-list .scene-item')].filter(e => e.getClientRects().length)"
                      ".map(e => e.dataset.scene)")
    assert shown == ["beta"] and viewer.state()["scene"] == "alpha"   # typing is not a shortcut


def test_method_checkboxes_show_and_hide_panels(viewer):
    viewer.open()
    listed = viewer.js("[...document.querySelectorAll('#method-list .method-item')].map(e => e.dataset.method)")
    assert sorted(listed) == sorted(PIPELINES)

    def checked():
        return viewer.js("[...document.querySelectorAll('#method-list .method-item')]"
                         ".filter(e => e.querySelector('input[type=checkbox]').checked).map(e => e.dataset.method)")

    def toggle(method):
        viewer.browser.click(f"#method-list .method-item[data-method={json.dumps(method)}] input[type=checkbox]")
        viewer.settle()

    before = checked()
    assert [p["method"] for p in viewer.method_panels()] == before == viewer.state()["methods"]
    added = [m for m in ("MGFF+RCAN", "CF-Net", "DBPN+MGFF") if m not in before][:2]
    removed = before[0]
    for method in added:
        toggle(method)
    toggle(removed)
    now = checked()
    assert set(now) == (set(before) | set(added)) - {removed}
    order = [m for m in listed if m in now]            # panels in the listed order
    assert now == order
    assert [p["method"] for p in viewer.method_panels()] == order == viewer.state()["methods"]
    viewer.wait_images()
    toggle(removed)
    assert removed in [p["method"] for p in viewer.method_panels()]
    viewer.browser.click("#method-filter")
    for char in "cf":
        viewer.browser.key(char)
    viewer.settle()
    assert viewer.js("[...document.querySelectorAll('#method-list .method-item')]"
                     ".filter(e => e.getClientRects().length).map(e => e.dataset.method)") == ["CF-Net", "CFANet"]
    assert viewer.hash_params()["methods"].split(",") == viewer.state()["methods"]


def test_wheel_drag_and_keys_zoom_and_pan_every_panel_together(viewer, artifacts):
    viewer.open()
    viewer.click_scene("alpha")   # the first scene, "../evil", has no image
    viewer.wait_images()
    b = viewer.browser

    def synchronised():
        panels = viewer.panels()
        transforms = {p["transform"] for p in panels}
        assert len(transforms) == 1 and None not in transforms, transforms
        assert all(p["complete"] for p in panels)
        pixelated = viewer.js("document.getElementById('panels').classList.contains('pixelated')")
        assert pixelated == (viewer.state()["zoom"] >= 2)
        if pixelated:
            assert {p["rendering"] for p in panels} == {"pixelated"}
        return panels

    start = viewer.state()
    synchronised()
    first, second = viewer.panels()[:2]
    # the wheel zooms about the cursor: the image point under it stays under it
    cx = first["view"]["left"] + first["view"]["width"] * 0.6
    cy = first["view"]["top"] + first["view"]["height"] * 0.45
    for _ in range(12):
        image = viewer.panels()[0]["image"]
        u, v = (cx - image["left"]) / image["width"], (cy - image["top"]) / image["height"]
        zoom = viewer.state()["zoom"]
        b.wheel(cx, cy, -120)
        viewer.settle()
        after = viewer.panels()[0]["image"]
        assert viewer.state()["zoom"] > zoom
        if 0 <= u <= 1 and 0 <= v <= 1:
            assert abs(cx - (after["left"] + u * after["width"])) < 2
            assert abs(cy - (after["top"] + v * after["height"])) < 2
        if after["width"] > 3 * first["view"]["width"]:
            break
    zoomed = viewer.state()
    assert zoomed["zoom"] > start["zoom"] and (zoomed["x"], zoomed["y"]) != (start["x"], start["y"])
    synchronised()
    # a drag on another panel pans them all by the drag
    before = [p["image"] for p in viewer.panels()]
    view = second["view"]
    x0, y0 = view["left"] + view["width"] / 2, view["top"] + view["height"] / 2
    b.drag(x0, y0, x0 - 50, y0 - 30, steps=6)
    viewer.settle()
    panned = viewer.state()
    assert panned["zoom"] == zoomed["zoom"] and (panned["x"], panned["y"]) != (zoomed["x"], zoomed["y"])
    for old, new in zip(before, [p["image"] for p in synchronised()]):
        assert abs(new["left"] - old["left"] + 50) < 1.5 and abs(new["top"] - old["top"] + 30) < 1.5
    shot(b, artifacts, "viewer_zoom.png")
    params = viewer.hash_params()
    assert float(params["zoom"]) == pytest.approx(panned["zoom"], rel=1e-3)
    assert float(params["x"]) == pytest.approx(panned["x"], abs=1e-2)
    assert float(params["y"]) == pytest.approx(panned["y"], abs=1e-2)
    # keys: arrows pan, + zooms in, 0 fits
    b.key("ArrowLeft")
    viewer.settle()
    assert viewer.state()["x"] != panned["x"] and viewer.state()["zoom"] == panned["zoom"]
    b.key("0")
    viewer.settle()
    fitted = viewer.state()
    assert (fitted["zoom"], fitted["x"], fitted["y"]) == (start["zoom"], start["x"], start["y"])
    b.key("+")
    viewer.settle()
    assert viewer.state()["zoom"] > fitted["zoom"]
    synchronised()
    zoom = viewer.state()["zoom"]
    b.key("-")
    viewer.settle()
    assert viewer.state()["zoom"] < zoom
    synchronised()


def test_ab_mode_divider(viewer, artifacts):
    viewer.open()
    viewer.click_scene("alpha")   # the first scene, "../evil", has no image
    viewer.wait_images()
    b = viewer.browser
    b.key("2")
    viewer.settle()
    state = viewer.state()
    assert state["mode"] == "ab"
    assert viewer.js("document.getElementById('mode-ab').classList.contains('active')")
    assert viewer.js("document.getElementById('ab-view').getClientRects().length > 0")
    left, right = viewer.js("[document.getElementById('ab-left').value, document.getElementById('ab-right').value]")
    assert left and right and left != right and (left, right) == (state["abLeft"], state["abRight"])
    entry = next(s for s in viewer.data["scenes"][str(state["scale"])] if s["name"] == "alpha")
    url = lambda role: entry["inputs"].get(role) or entry["images"][role]  # noqa: E731
    images = viewer.js("[...document.querySelectorAll('#ab-view img')]"
                       ".map(i => [i.src, i.complete && i.naturalWidth > 0])")
    assert sorted(src for src, _ in images) == sorted(viewer.resolve(url(role)) for role in (left, right))
    assert all(loaded for _, loaded in images)
    view = viewer.js("(() => { const r = document.querySelector('#ab-view .panel-viewport').getBoundingClientRect(); "
                     "return [r.left, r.top, r.width, r.height]; })()")
    x, y = b.center("#ab-view .ab-divider")
    target = view[0] + 0.3 * view[2]
    b.drag(x, y, target, y, steps=8)
    viewer.settle()
    position = float(viewer.js("document.querySelector('#ab-view .ab-divider').dataset.position"))
    assert abs(position - 0.3) < 0.03, position
    clips = viewer.js("[...document.querySelectorAll('#ab-view *')].map(e => getComputedStyle(e).clipPath)"
                      ".filter(c => c && c !== 'none')")
    assert clips, "no clip-path in #ab-view"
    numbers = [float(n) for c in clips for n in re.findall(r"(-?\d+(?:\.\d+)?)%", c)]
    pixels = [float(n) for c in clips for n in re.findall(r"(-?\d+(?:\.\d+)?)px", c)]
    assert (any(abs(n - 100 * position) < 1 or abs(n - 100 * (1 - position)) < 1 for n in numbers)
            or any(abs(n - position * view[2]) < 3 or abs(n - (1 - position) * view[2]) < 3 for n in pixels)), clips
    shot(b, artifacts, "viewer_ab.png")
    b.key("1")
    viewer.settle()
    assert viewer.state()["mode"] == "side" and viewer.js("document.getElementById('ab-view').hidden")
    assert viewer.js("document.getElementById('mode-side').classList.contains('active')") and viewer.method_panels()


def test_error_mode(viewer, artifacts):
    viewer.open()
    viewer.click_scene("alpha")   # the first scene, "../evil", has no image
    viewer.wait_images()
    b = viewer.browser
    b.click("#mode-error")
    viewer.settle()
    state = viewer.state()
    assert state["mode"] == "error"
    assert viewer.js("document.getElementById('mode-error').classList.contains('active')")
    assert viewer.js("document.getElementById('error-view').getClientRects().length > 0")
    scale, scene = state["scale"], state["scene"]
    entry = next(s for s in viewer.data["scenes"][str(scale)] if s["name"] == scene)
    target = viewer.js("document.getElementById('error-target').value")
    assert target == state["errorTarget"]
    images = viewer.js("""[...document.querySelectorAll('#error-view img')].map(i => ({src: i.src,
        blend: getComputedStyle(i).mixBlendMode, loaded: i.complete && i.naturalWidth > 0}))""")
    against = state["errorAgainst"]
    assert against == "gt" == viewer.js("document.getElementById('error-against').value")
    assert sorted(i["src"] for i in images) == sorted(viewer.resolve(u) for u in (entry["images"][target],
                                                                                   entry["inputs"]["gt"]))
    assert all(i["loaded"] for i in images)
    assert any(i["blend"] == "difference" for i in images), images
    filters = viewer.js("""[document.getElementById('error-view'), ...document.querySelectorAll('#error-view *')]
        .map(e => getComputedStyle(e).filter).filter(f => f && f.includes('url('))""")
    assert filters, "no SVG filter in #error-view"
    ident = re.search(r"url\(\"?[^#]*#([^\")]+)\"?\)", filters[0]).group(1)
    assert viewer.js(f"document.getElementById({json.dumps(ident)}) instanceof SVGFilterElement")
    assert viewer.js("document.getElementById('error-scale').getClientRects().length > 0")

    def matrix(ident):
        return viewer.js(f"document.getElementById({json.dumps(ident)}).querySelector('feColorMatrix')"
                         ".getAttribute('values')")

    before = matrix(ident)
    gain = state["gain"]
    b.key("g")          # the next gain
    viewer.settle()
    assert viewer.state()["gain"] != gain
    assert viewer.js("document.getElementById('error-gain').value") == str(viewer.state()["gain"])
    filters = viewer.js("[...document.querySelectorAll('#error-view *')].map(e => getComputedStyle(e).filter)"
                        ".filter(f => f && f.includes('url('))")
    ident = re.search(r"url\(\"?[^#]*#([^\")]+)\"?\)", filters[0]).group(1)
    assert matrix(ident) != before
    shot(b, artifacts, "viewer_error.png")


def test_links_from_table1_and_per_image_open_the_viewer(viewer, built):
    output = built.output
    for scale in SCALES:
        for page in ("index.html", f"table1_x{scale}.html"):
            text = (output / page).read_text()
            for method in PIPELINES:
                link = f'href="viewer.html#scale={scale}&amp;methods={quote(method, safe="")}"'
                assert link in text, (page, method)
    # a hash opens the viewer there
    scene, methods = "beta", ["CFANet", "RCAN+MGFF"]
    listed = ",".join(quote(m, safe="") for m in methods)
    viewer.open(f"scale=4&scene={quote(scene, safe='')}&methods={listed}&mode=ab")
    state = viewer.state()
    in_table_order = sorted(methods, key=PIPELINES.index)
    assert (state["scale"], state["scene"], state["methods"], state["mode"]) == (4, scene, in_table_order, "ab")
    viewer.open(f"scale=2&scene={quote('<b>x</b>', safe='')}&methods=CFANet&zoom=3&x=4&y=5")
    state = viewer.state()
    assert (state["scene"], state["methods"], state["mode"]) == ("<b>x</b>", ["CFANet"], "side")
    assert (state["zoom"], state["x"], state["y"]) == (3, 4, 5)
    # ... and a new hash on the open page moves it there
    viewer.browser.navigate(f"{viewer.url}#scale=2&scene=beta&methods={quote('DBPN+MGFF', safe='')}")
    viewer.browser.wait_for("window.viewer.state().scene === 'beta'", timeout=5)
    viewer.wait_images()
    assert [p["method"] for p in viewer.method_panels()] == ["DBPN+MGFF"] == viewer.state()["methods"]
    # from the index, two clicks: a Table 1 value, then a scene
    b = viewer.browser
    b.navigate((output / "index.html").resolve().as_uri())
    b.click('table.table1[data-scale="4"] td[data-method="MGFF+RCAN"][data-metric="ssim"] a')
    viewer.wait_ready()
    state = viewer.state()
    assert state["scale"] == 4 and state["methods"] == ["MGFF+RCAN"]
    viewer.click_scene("beta")
    viewer.wait_images()
    panels = viewer.method_panels()
    assert [p["method"] for p in panels] == ["MGFF+RCAN"] and viewer.state()["scene"] == "beta"
    assert url_path(panels[0]["src"]) == expected_image(built, 4, "MGFF+RCAN", "beta")
    # the per-image page: a row's method opens its scene and method
    b.navigate((output / "per_image.html").resolve().as_uri())
    marked = b.evaluate("""(() => { for (const row of document.querySelectorAll('#per-image tbody tr')) {
        const cells = [...row.cells].map(c => c.textContent.trim());
        if (cells[0] === '2' && cells[1] === '<b>x</b>' && cells[2] === 'SwinIR+MEF-Net') {
          row.querySelector('a.viewer-link').setAttribute('data-test-click', '1'); return true; } }
        return false; })()""")
    assert marked
    b.click("[data-test-click]")
    viewer.wait_ready()
    state = viewer.state()
    assert (state["scale"], state["scene"], state["methods"]) == (2, "<b>x</b>", ["SwinIR+MEF-Net"])
    shown = url_path(viewer.method_panels()[0]["src"])
    assert shown == expected_image(built, 2, "SwinIR+MEF-Net", "<b>x</b>")


def test_narrow_window(viewer, artifacts):
    viewer.open(width=768, height=1024)
    b = viewer.browser
    assert viewer.js("innerWidth") == 768
    scene = "beta"
    selector = f"#scene-list .scene-item[data-scene={json.dumps(scene)}]"
    visible = viewer.js(f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect(); "
                        f"return r.width > 0 && r.right > 0 && r.left < innerWidth; }})()")
    if not visible:  # a collapsed section (or drawer): open it with its toggle
        b.click('[data-collapse="scene-section"]')
        viewer.settle()
    viewer.click_scene(scene)
    viewer.wait_images()
    assert viewer.state()["scene"] == scene
    panels = [p for p in viewer.panels() if p["visible"]]
    assert {p["role"] for p in panels} == {"over", "under", "gt", "method"}
    for p in panels:
        assert p["complete"] and p["panel"]["width"] > 100, p
        assert p["panel"]["left"] >= -0.5 and p["panel"]["right"] <= 768.5, p
    assert viewer.js("document.documentElement.scrollWidth") <= 768
    shot(b, artifacts, "viewer_narrow.png")
