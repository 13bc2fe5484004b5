"""Weight of the report's comparison viewer on a paper-size run (python benchmarks/viewer.py).

Issue 19: large runs stay light. The viewer (`reports/viewer.py`, `reports/static/viewer.js`) loads
only the images it shows, from the published images (`images/` of the results folder), with a
thumbnail made once per image for the overviews (`<report>/thumbs/`) and full images on demand; the
report of 589 scenes x 34 methods copies no image and embeds none in its HTML.

    python benchmarks/viewer.py [--scenes 589] [--size 64x96] [--switches 5] [--n-resamples 100]
        [--workdir DIR] [--keep] [--no-browser] [--chromium PATH] [--json OUT]

What runs. In a temporary folder (or `--workdir`): a results folder as a run of the paper's grid
writes it, at x2: `--scenes` scenes named 0001, 0002, ... and every method of the paper's grid (derived
from the method registry as the runner does, `pipelines.catalog.paper_grid` and
`pipelines.manifest.grid_record`; 34 methods today), every metric of `cfanet.metrics.registry` per
scene and method, stage timings, recorded through `pipelines.store.ResultsStore` in the runner's
order by the report tests' own helper (`tests/test_reports.py`, `_record_run`), and small synthetic
PNG images in the publisher's layout (`images/x2/<method>/<scene>.png`, `images/x2/_scene/<role>/
<scene>.png`: over and under at LR, gt, gt_over, gt_under at HR; `--size` HxW is the HR size).
Then the report is rendered (`reports.build.build_report`, `--n-resamples` bootstrap resamples):

    cold      the whole report into an empty folder: the viewer makes every thumbnail
    warm      the whole report again into the same folder: the thumbnails are all there
    viewer    `reports.viewer.write_viewer` inside each render (timed by wrapping the name that
              `reports.build` calls), and of that the time in `ensure_thumbnail`

Checks (printed as figures, 0 or "yes" is what issue 19 asks): no PNG of `images/` is in the report
folder (same bytes or same inode as a published image), every image URL of `viewer_data.js` resolves
into the results' `images/` (outside the report folder) and every thumbnail URL into `<report>/thumbs/`,
no HTML (nor `viewer_data.js`) of the report contains `data:image`, and the warm render rewrote no
thumbnail.

In a headless Chromium (`tests/browser.py`; skipped with a message when none is on PATH, or with
`--no-browser`): `viewer.html` from file://, 1400x1000, measuring the time from navigation start to
`document.body.dataset.viewerReady === "1"` (a MutationObserver installed before the page's scripts
records the moment), DOMContentLoaded and load, the viewer's own `viewer.timings`; the image requests
made until the network is quiet (CDP `Network.requestWillBeSent`; the Performance API's resource
entries as a cross-check), split into full images (under `images/`) and thumbnails (under `thumbs/`),
against the images visible in the window; the JS heap (CDP `Performance.getMetrics`, after a
garbage collection) and DOM nodes; then `--switches` scene changes (`viewer.setScene(name)` to scenes
spread over the list, timed in the page until `document.body.dataset.viewLoaded === "1"` and two
animation frames later, and the synchronous `setScene` call alone) with the images each one
requested. The browser is started before anything else and waits on about:blank (see `main`).

Printed at the end: one table of figures, each with what it is. With the defaults it takes about two
minutes on 2 CPU cores (a third of it writing the 23k published images) and ~350 MB of disk.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

SCALE = 2
SCENE_ROLES = (("over", True), ("under", True), ("gt", False), ("gt_over", False), ("gt_under", False))  # (role, LR)
WIDTH, HEIGHT = 1400, 1000


# -- the results folder ---------------------------------------------------------------------------------

def paper_grid_record() -> dict:
    """The manifest's `grid` of a run of the paper's grid, as the runner records it."""
    from pipelines.catalog import paper_grid
    from pipelines.manifest import grid_record
    from pipelines.registry import methods

    table = methods()
    return grid_record(paper_grid(table), [], table)


def synthetic_scores(names: list[str], scenes: list[str], rng: np.random.Generator) -> dict:
    """{method: {scale: {scene: {(metric, convention): value}}}}: every registry metric, convention-dependent
    ones in `paper` and `sr`, the others `official`; plausible values (a mean per method, noise per scene)."""
    from cfanet.metrics.registry import METRICS

    centre = {"psnr": (18.0, 2.0), "ssim": (0.75, 0.05)}
    columns = {}
    for metric in METRICS:
        mean, spread = centre.get(metric.name, (0.8, 0.05))
        values = (mean + spread * rng.standard_normal((len(names), 1))
                  + 0.5 * spread * rng.standard_normal((len(names), len(scenes))))
        conventions = ("paper", "sr") if metric.convention_dependent else ("official",)
        for k, convention in enumerate(conventions):
            columns[(metric.name, convention)] = values + k * 0.1 * spread
    return {name: {SCALE: {scene: {key: float(v[i, j]) for key, v in columns.items()}
                           for j, scene in enumerate(scenes)}}
            for i, name in enumerate(names)}


def write_images(images_dir: Path, names: list[str], scenes: list[str], hr: tuple[int, int],
                 rng: np.random.Generator) -> tuple[int, int]:
    """The published images of every scene and method (vectorised per scene); (count, bytes)."""
    from PIL import Image

    h, w = hr
    lr = (max(1, h // SCALE), max(1, w // SCALE))
    root = images_dir / f"x{SCALE}"
    for folder in [*(f"_scene/{role}" for role, _ in SCENE_ROLES), *names]:
        (root / folder).mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    count = size = 0
    for scene in scenes:
        phase = rng.random(3).astype(np.float32) * 6.28
        base = 0.5 + 0.35 * np.sin(xx[..., None] / (4 + 3 * phase) + yy[..., None] / 9 + phase)   # (h, w, 3)
        outputs = base[None] + 0.08 * rng.standard_normal((len(names), 1, 1, 3), dtype=np.float32) \
            + 0.03 * rng.standard_normal((len(names), h, w, 1), dtype=np.float32)
        stack = np.clip(np.concatenate([base[None], outputs]) * 255, 0, 255).astype(np.uint8)
        gt = stack[0]
        for role, low in SCENE_ROLES:
            image = gt
            if role in ("over", "gt_over"):
                image = np.clip(gt.astype(np.int16) + 60, 0, 255).astype(np.uint8)
            elif role in ("under", "gt_under"):
                image = (gt // 3).astype(np.uint8)
            if low:
                image = image[:lr[0] * SCALE:SCALE, :lr[1] * SCALE:SCALE]
            path = root / "_scene" / role / f"{scene}.png"
            Image.fromarray(image).save(path, compress_level=1)
            count, size = count + 1, size + path.stat().st_size
        for name, image in zip(names, stack[1:]):
            path = root / name / f"{scene}.png"
            Image.fromarray(image).save(path, compress_level=1)
            count, size = count + 1, size + path.stat().st_size
    return count, size


def build_results(root: Path, n_scenes: int, hr: tuple[int, int], seed: int = 0) -> dict:
    """`root/results.sqlite` and `root/images/`; what was made and how long it took."""
    from cfanet.metrics.registry import METRICS
    from pipelines.store import ResultsStore
    from test_reports import _record_run

    rng = np.random.default_rng(seed)
    grid = paper_grid_record()
    specs = {entry["name"]: entry for entry in grid["pipelines"]}
    names = list(specs)
    scenes = [f"{k:04d}" for k in range(1, n_scenes + 1)]
    manifest = {"profile": "demo", "git_commit": "benchmark", "device": "cpu", "device_name": "synthetic",
                "packages": {}, "config_source": "<benchmarks/viewer.py>", "config_sha256": "0",
                "demo_weights": [], "grid": grid, "metrics": [metric.describe() for metric in METRICS]}
    start = time.perf_counter()
    with ResultsStore(root / "results.sqlite") as store:
        _record_run(store, names, synthetic_scores(names, scenes, rng), 1.0, False, manifest, specs=specs,
                    scales=(SCALE,), scenes=scenes)
    database_seconds = time.perf_counter() - start
    start = time.perf_counter()
    count, size = write_images(root / "images", names, scenes, hr, rng)
    return {"database": root / "results.sqlite", "images_dir": (root / "images").resolve(), "names": names,
            "scenes": scenes, "reference": grid["reference"], "n_images": count, "images_bytes": size,
            "database_seconds": database_seconds, "images_seconds": time.perf_counter() - start}


# -- the report ---------------------------------------------------------------------------------------

class Timed:
    """Wraps `module.attribute` (a function) and adds up its calls' seconds while in use."""

    def __init__(self, module, attribute: str):
        self.module, self.attribute = module, attribute
        self.seconds, self.calls = 0.0, 0

    def __enter__(self) -> "Timed":
        original = self.original = getattr(self.module, self.attribute)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1

        setattr(self.module, self.attribute, timed)
        return self

    def __exit__(self, *exc) -> None:
        setattr(self.module, self.attribute, self.original)


def render(database: Path, output: Path, n_resamples: int) -> dict:
    """One `build_report` into `output`: seconds of the whole, of `write_viewer` and of its thumbnails."""
    import reports.build
    import reports.viewer

    with Timed(reports.build, "write_viewer") as viewer, Timed(reports.viewer, "ensure_thumbnail") as thumbs:
        start = time.perf_counter()
        reports.build.build_report(database, output, profile="demo", dataset="synthetic scenes",
                                   n_resamples=n_resamples)
        seconds = time.perf_counter() - start
    if viewer.calls != 1:
        raise RuntimeError(f"build_report called write_viewer {viewer.calls} times (expected once)")
    return {"seconds": seconds, "viewer_seconds": viewer.seconds, "thumb_seconds": thumbs.seconds,
            "thumb_calls": thumbs.calls}


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def thumbnail_state(output: Path) -> dict[Path, int]:
    thumbs = output / "thumbs"
    return {path: path.stat().st_mtime_ns for path in files_under(thumbs)} if thumbs.is_dir() else {}


def viewer_payload(output: Path) -> dict:
    text = (output / "viewer_data.js").read_text(encoding="utf-8")
    prefix = "window.VIEWER_DATA = "
    if not text.startswith(prefix):
        raise RuntimeError("viewer_data.js does not start with `window.VIEWER_DATA = `")
    return json.loads(text[len(prefix):].rstrip().rstrip(";"))


def check_report(output: Path, images_dir: Path) -> dict:
    """The report's sizes and the checks of issue 19 (no copied image, no embedded image data)."""
    output = output.resolve()
    files = files_under(output)
    thumbs_dir = output / "thumbs"
    thumbs = [path for path in files if path.is_relative_to(thumbs_dir)]
    # published images: by content and by inode (a hard link is a copy in all but name)
    published = files_under(images_dir)
    hashes = {hashlib.sha256(path.read_bytes()).digest() for path in published}
    inodes = {(stat.st_dev, stat.st_ino) for stat in (path.stat() for path in published)}
    pngs = [path for path in files if path.suffix.lower() == ".png"]
    copied = [path for path in pngs if hashlib.sha256(path.read_bytes()).digest() in hashes
              or (path.stat().st_dev, path.stat().st_ino) in inodes]
    links = [path for path in output.rglob("*") if path.is_symlink()]
    # the viewer's URLs
    payload = viewer_payload(output)
    full_urls = thumb_urls = 0
    outside_images, inside_report, thumb_elsewhere = [], [], []
    for scenes in payload["scenes"].values():
        for scene in scenes:
            for url in filter(None, [*scene["inputs"].values(), *scene["images"].values()]):
                full_urls += 1
                path = (output / unquote(url)).resolve()
                if not path.is_relative_to(images_dir):
                    outside_images.append(url)
                if path.is_relative_to(output):
                    inside_report.append(url)
            for url in filter(None, [*scene.get("thumbs", {}).values(), *scene.get("input_thumbs", {}).values()]):
                thumb_urls += 1
                if not (output / unquote(url)).resolve().is_relative_to(thumbs_dir):
                    thumb_elsewhere.append(url)
    pages = [path for path in files if path.suffix.lower() in (".html", ".htm")] + [output / "viewer_data.js"]
    embedding = [path.name for path in pages if "data:image" in path.read_text(encoding="utf-8", errors="replace")]
    largest = max((path for path in files if not path.is_relative_to(thumbs_dir)), key=lambda p: p.stat().st_size)
    return {
        "report_files": len(files), "report_bytes": sum(path.stat().st_size for path in files),
        "viewer_data_bytes": (output / "viewer_data.js").stat().st_size,
        "viewer_html_bytes": (output / "viewer.html").stat().st_size,
        "viewer_static_bytes": sum((output / name).stat().st_size for name in ("viewer.js", "viewer.css")),
        "thumbs": len(thumbs), "thumbs_bytes": sum(path.stat().st_size for path in thumbs),
        "largest_other": f"{largest.relative_to(output)} ({largest.stat().st_size / 2**20:.2f} MiB)",
        "pngs_in_report": len(pngs), "copied_images": [str(p.relative_to(output)) for p in copied],
        "symlinks": [str(p.relative_to(output)) for p in links],
        "full_urls": full_urls, "thumb_urls": thumb_urls, "urls_outside_images": outside_images,
        "urls_inside_report": inside_report, "thumb_urls_elsewhere": thumb_elsewhere,
        "pages_checked": len(pages), "pages_with_data_image": embedding,
    }


# -- the browser ----------------------------------------------------------------------------------------

# Installed before the page's own scripts: the moments the viewer says it is ready / its view loaded.
MARKS_JS = """
window.__bench = {ready: null};
new MutationObserver(() => {
  const body = document.body;
  if (window.__bench.ready !== null || !body || body.dataset.viewerReady !== '1') return;
  const panels = [...document.querySelectorAll('#panels img')];
  window.__bench = {ready: performance.now(), panels: panels.length,
                    decoded: panels.filter(i => i.complete && i.naturalWidth > 0).length};
}).observe(document, {attributes: true, subtree: true, attributeFilter: ['data-viewer-ready']});
"""

SWITCH_JS = """new Promise(resolve => {
  const body = document.body, t0 = performance.now();
  let over = false, sync = null;
  const finish = () => {
    if (over) return; over = true; observer.disconnect();
    const loaded = performance.now() - t0;
    requestAnimationFrame(() => requestAnimationFrame(
      () => resolve({ok: true, sync, loaded, painted: performance.now() - t0})));
  };
  const observer = new MutationObserver(() => { if (body.dataset.viewLoaded === '1') finish(); });
  observer.observe(body, {attributes: true, attributeFilter: ['data-view-loaded']});
  const ok = window.viewer.setScene(%s);
  sync = performance.now() - t0;
  if (!ok) { over = true; observer.disconnect(); resolve({ok: false}); return; }
  if (body.dataset.viewLoaded === '1') finish();
})"""

VISIBLE_IMAGES_JS = """[...document.images].filter(i => {
  if (!i.getAttribute('src')) return false;
  const r = i.getBoundingClientRect(), s = getComputedStyle(i);
  return r.width > 0 && r.height > 0 && r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth
         && s.visibility !== 'hidden' && s.display !== 'none' && i.offsetParent !== null;
}).length"""


def classify(urls: list[str], output: Path, images_dir: Path) -> dict[str, int]:
    """Counts of full images (under `images/`), thumbnails (under `<report>/thumbs/`), other images and
    other requests (pages, scripts, styles)."""
    counts = {"full": 0, "thumb": 0, "other_image": 0, "other": 0}
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme != "file":
            counts["other"] += 1
            continue
        path = Path(unquote(parts.path)).resolve()
        if path.is_relative_to(images_dir):
            counts["full"] += 1
        elif path.is_relative_to(output / "thumbs"):
            counts["thumb"] += 1
        elif path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".gif", ".svg"):
            counts["other_image"] += 1
        else:
            counts["other"] += 1
    return counts


def settle(browser, quiet: float = 0.5, limit: float = 15.0) -> None:
    """Wait until no request has been sent for `quiet` seconds and the page's images are decoded."""
    deadline = time.monotonic() + limit
    seen, since = len(browser.requests), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if len(browser.requests) != seen:
            seen, since = len(browser.requests), time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    browser.wait_for("[...document.querySelectorAll('#panels img')].every(i => i.complete)", timeout=limit)


def heap(browser) -> dict[str, float]:
    browser.send("HeapProfiler.collectGarbage", session=True)
    metrics = {m["name"]: m["value"] for m in browser.send("Performance.getMetrics", session=True)["metrics"]}
    return {"used": metrics.get("JSHeapUsedSize", float("nan")), "total": metrics.get("JSHeapTotalSize", float("nan")),
            "nodes": metrics.get("Nodes", float("nan"))}


def measure_browser(browser, output: Path, images_dir: Path, scenes: list[str], switches: int) -> dict:
    """The figures of `viewer.html` in `browser` (a started `tests/browser.py` Browser, no page yet)."""
    output = output.resolve()
    url = (output / "viewer.html").as_uri()
    browser.new_page("about:blank", WIDTH, HEIGHT)
    browser.send("Page.addScriptToEvaluateOnNewDocument", {"source": MARKS_JS}, session=True)
    browser.send("Performance.enable", session=True)
    browser.requests.clear()
    start = time.perf_counter()
    browser.navigate(url, timeout=60)
    browser.wait_for("document.body && document.body.dataset.viewerReady === '1'", timeout=60)
    wall = time.perf_counter() - start
    marks = browser.evaluate("window.__bench")
    if browser.evaluate("document.body.dataset.viewerError === '1'"):
        raise RuntimeError("the viewer reports an error: " + str(browser.evaluate(
            "(document.getElementById('viewer-error') || {}).textContent")))
    settle(browser)
    navigation = browser.evaluate("(() => { const n = performance.getEntriesByType('navigation')[0];"
                                  " return {dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd}; })()")
    load_requests = list(browser.requests)
    resources = browser.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    state = browser.evaluate("window.viewer.state()")
    found = {
        "ready_ms": marks["ready"], "ready_panels": marks["panels"], "ready_decoded": marks["decoded"],
        "wall_ready_s": wall,
        "dcl_ms": navigation["dcl"], "load_ms": navigation["load"],
        "timings": browser.evaluate("window.viewer.timings"),
        "load_requests": classify(load_requests, output, images_dir),
        "resource_entries": classify(resources, output, images_dir),
        "visible_images": browser.evaluate(VISIBLE_IMAGES_JS),
        "img_elements": browser.evaluate("document.images.length"),
        "shown_methods": len(state.get("methods", [])), "scene": state.get("scene"),
        "heap": heap(browser),
    }
    # scene switches to scenes spread over the list (not the one shown)
    targets = [scenes[(k * len(scenes)) // (switches + 1)] for k in range(1, switches + 1)]
    targets = [name for name in dict.fromkeys(targets) if name != found["scene"]]
    found["switches"] = []
    for name in targets:
        before = len(browser.requests)
        result = browser.evaluate(SWITCH_JS % json.dumps(name), timeout=60)
        if not result or not result.get("ok"):
            raise RuntimeError(f"viewer.setScene({name!r}) failed")
        settle(browser)
        result["requests"] = classify(browser.requests[before:], output, images_dir)
        found["switches"].append(result)
    found["heap_after"] = heap(browser)
    found["errors"] = list(browser.errors)
    return found


# -- figures -------------------------------------------------------------------------------------------

def mib(n: float) -> str:
    return f"{n / 2**20:.2f} MiB"


def kib(n: float) -> str:
    return f"{n / 2**10:.1f} KiB"


def yes_no(ok: bool) -> str:
    return "yes" if ok else "NO"


def figures_table(r: dict) -> list[tuple[str, str, str]]:
    b, c1, c2, chk = r["build"], r["cold"], r["warm"], r["check"]
    rows = [
        ("scenes x methods", f"{len(b['scenes'])} x {len(b['names'])}",
         f"at x{SCALE}, methods of the paper's grid (registry; reference {b['reference']})"),
        ("published images", f"{b['n_images']} ({mib(b['images_bytes'])})",
         f"PNG under images/ (HR {r['hr'][0]}x{r['hr'][1]}, inputs at LR), written in {b['images_seconds']:.1f} s"),
        ("results database", f"{b['database_seconds']:.1f} s", "recording scores and stage timings (ResultsStore)"),
        ("report, cold", f"{c1['seconds']:.1f} s", "build_report into an empty folder (thumbnails made)"),
        ("  write_viewer, cold", f"{c1['viewer_seconds']:.1f} s",
         f"of which ensure_thumbnail {c1['thumb_seconds']:.1f} s ({c1['thumb_calls']} calls)"),
        ("report, warm", f"{c2['seconds']:.1f} s", "build_report again into the same folder (thumbnails present)"),
        ("  write_viewer, warm", f"{c2['viewer_seconds']:.2f} s",
         f"of which ensure_thumbnail {c2['thumb_seconds']:.2f} s ({c2['thumb_calls']} calls)"),
        ("thumbnails rewritten, warm", str(r["rewritten"]), "thumbnails the warm render wrote again (0: made once)"),
        ("viewer_data.js", kib(chk["viewer_data_bytes"]),
         f"{kib(chk['viewer_data_bytes'] / max(1, len(b['scenes'])))} per scene"),
        ("viewer.html", kib(chk["viewer_html_bytes"]), f"viewer.js + viewer.css: {kib(chk['viewer_static_bytes'])}"),
        ("thumbnails", f"{chk['thumbs']} ({mib(chk['thumbs_bytes'])})", "JPEG files under <report>/thumbs/"),
        ("report folder", f"{chk['report_files']} files ({mib(chk['report_bytes'])})",
         f"everything, thumbnails included; largest other file {chk['largest_other']}"),
        ("published images copied", str(len(chk["copied_images"])),
         f"report PNGs with the bytes or inode of an image of images/ (of {chk['pngs_in_report']} PNGs); "
         f"symlinks: {len(chk['symlinks'])}"),
        ("viewer URLs outside report", yes_no(not chk["urls_outside_images"] and not chk["urls_inside_report"]),
         f"all {chk['full_urls']} full-image URLs resolve into images/, none into the report folder"),
        ("thumbnail URLs in thumbs/", yes_no(not chk["thumb_urls_elsewhere"]),
         f"all {chk['thumb_urls']} thumbnail URLs resolve into <report>/thumbs/"),
        ("pages embedding data:image", str(len(chk["pages_with_data_image"])),
         f"of {chk['pages_checked']} files checked (every HTML page and viewer_data.js)"
         + (f": {', '.join(chk['pages_with_data_image'])}" if chk["pages_with_data_image"] else "")),
    ]
    w = r.get("browser")
    if isinstance(w, str):
        rows.append(("browser", "skipped", w))
        return rows
    t = w["timings"] or {}
    lr, re_ = w["load_requests"], w["resource_entries"]
    rows += [
        ("viewer ready", f"{w['ready_ms']:.0f} ms",
         f"navigation start -> body.dataset.viewerReady = 1, when {w['ready_decoded']} of {w['ready_panels']} "
         f"panel images were loaded (from Python: {w['wall_ready_s']:.2f} s)"),
        ("  DOMContentLoaded / load", f"{w['dcl_ms']:.0f} / {w['load_ms']:.0f} ms", "navigation timing"),
        ("  viewer.timings", ", ".join(f"{k} {v:.0f}" for k, v in t.items()) + " ms",
         "the viewer's own: since its script started"),
        ("image requests at load", str(lr["full"] + lr["thumb"] + lr["other_image"]),
         f"full {lr['full']}, thumbnails {lr['thumb']}, other images {lr['other_image']} (non-image requests "
         f"{lr['other']}); until the network is quiet"),
        ("  Performance API", str(re_["full"] + re_["thumb"] + re_["other_image"]),
         f"image resource entries: full {re_['full']}, thumbnails {re_['thumb']}, other {re_['other_image']}"
         + (" (Chromium makes none for file:// URLs: the CDP count above is the figure)"
            if not sum(re_.values()) else "")),
        ("  visible images", str(w["visible_images"]),
         f"<img> with a src inside the {WIDTH}x{HEIGHT} window (of {w['img_elements']} <img>); "
         f"{w['shown_methods']} methods shown"),
        ("JS heap at load", mib(w["heap"]["used"]),
         f"used after GC (total {mib(w['heap']['total'])}); DOM nodes {w['heap']['nodes']:.0f}"),
        ("JS heap after switches", mib(w["heap_after"]["used"]),
         f"used after GC (total {mib(w['heap_after']['total'])}); DOM nodes {w['heap_after']['nodes']:.0f}"),
    ]
    if w["switches"]:
        loaded = [s["loaded"] for s in w["switches"]]
        painted = [s["painted"] for s in w["switches"]]
        sync = [s["sync"] for s in w["switches"]]
        full = [s["requests"]["full"] for s in w["switches"]]
        thumbs = [s["requests"]["thumb"] for s in w["switches"]]
        rows += [
            ("scene switch", f"{statistics.median(loaded):.0f} ms",
             f"median of {len(loaded)} viewer.setScene -> viewLoaded = 1 (max {max(loaded):.0f} ms; "
             f"painted: median {statistics.median(painted):.0f} ms)"),
            ("  setScene's own JS", f"{statistics.median(sync):.0f} ms",
             f"median time inside the synchronous viewer.setScene call (max {max(sync):.0f} ms)"),
            ("  requests per switch", f"{statistics.median(full):.0f} full + {statistics.median(thumbs):.0f} thumbs",
             f"median (full images: {min(full)}..{max(full)}, thumbnails: {min(thumbs)}..{max(thumbs)})"),
        ]
    rows.append(("browser errors", str(len(w["errors"])), "; ".join(w["errors"])[:200] or "console errors, exceptions"))
    return rows


def print_table(rows: list[tuple[str, str, str]]) -> None:
    first = max(len(row[0]) for row in rows)
    second = max(len(row[1]) for row in rows)
    print(f"{'figure':<{first}}  {'value':>{second}}  what it is")
    print("-" * (first + second + 40))
    for name, value, what in rows:
        print(f"{name:<{first}}  {value:>{second}}  {what}")


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size wants HxW (e.g. 64x96), not {text!r}") from None
    if h < SCALE or w < SCALE:
        raise argparse.ArgumentTypeError(f"--size: at least {SCALE}x{SCALE}")
    return h, w


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=589, help="scenes (default: SICE's 589)")
    parser.add_argument("--size", type=parse_size, default=(64, 96), help="HR size HxW (default 64x96)")
    parser.add_argument("--n-resamples", type=int, default=100, help="bootstrap resamples of the report (default 100)")
    parser.add_argument("--switches", type=int, default=5, help="scene switches timed in the browser (default 5)")
    parser.add_argument("--workdir", type=Path, help="build here (kept) instead of a temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium measurements")
    parser.add_argument("--chromium", help="the browser executable (default: the first on PATH)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.scenes < 1:
        parser.error("--scenes must be at least 1")

    total = time.perf_counter()
    print(f"platform: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    root = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="cfanet-viewer-bench-"))
    if args.workdir and root.exists() and any(root.iterdir()):
        parser.error(f"--workdir {root} is not empty")
    result: dict = {"hr": args.size, "browser": "--no-browser"}
    with contextlib.ExitStack() as stack:
        browser = None
        if not args.no_browser:
            # Started first, idle on about:blank until the report is rendered.
            from browser import Browser, find_chromium

            chromium = args.chromium or find_chromium()
            if chromium is None:
                result["browser"] = "no Chromium on PATH (chromium, chromium-browser, google-chrome): not measured"
            else:
                browser = stack.enter_context(Browser(chromium, WIDTH, HEIGHT, timeout=60))
        try:
            run(args, root, result, browser)
        finally:
            if args.workdir or args.keep:
                print(f"kept {root}")
            else:
                shutil.rmtree(root, ignore_errors=True)
    print()
    rows = figures_table(result)
    print_table(rows)
    print(f"\ntotal benchmark time {time.perf_counter() - total:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "result": result}, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0


def run(args, root: Path, result: dict, browser) -> None:
    """Build the results folder, render the report cold and warm, check it, measure it in `browser`
    (None: not measured); the figures go into `result`."""
    output = root / "report"
    print(f"building {args.scenes} scenes in {root} ...", flush=True)
    b = result["build"] = build_results(root / "results", args.scenes, args.size, args.seed)
    print(f"  {len(b['names'])} methods, {b['n_images']} images ({b['images_seconds']:.1f} s), "
          f"database ({b['database_seconds']:.1f} s)", flush=True)
    print("rendering the report, cold ...", flush=True)
    result["cold"] = render(b["database"], output, args.n_resamples)
    print(f"  {result['cold']['seconds']:.1f} s", flush=True)
    before = thumbnail_state(output)
    print("rendering the report, warm ...", flush=True)
    result["warm"] = render(b["database"], output, args.n_resamples)
    print(f"  {result['warm']['seconds']:.1f} s", flush=True)
    after = thumbnail_state(output)
    result["rewritten"] = sum(1 for path, mtime in after.items() if before.get(path) != mtime)
    result["check"] = check_report(output, b["images_dir"])
    if browser is not None:
        print(f"measuring viewer.html in {browser.executable} ...", flush=True)
        result["browser"] = measure_browser(browser, output, b["images_dir"], b["scenes"], args.switches)


if __name__ == "__main__":
    sys.exit(main())
