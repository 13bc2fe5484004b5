"""Figure 3: one scene's inputs and the outputs of chosen methods, each with a zoomed inset.

Panels, lettered as in the paper: (a) the over- and (b) the under-exposed LR inputs, enlarged to the
output size by pixel repetition (nearest neighbour, so the reader sees their real resolution), then,
from (c), the final image of each chosen method with its PSNR on that scene (the paper's proposed
method labelled "(ours)", as the paper does), and, on request only (`gt_panel`; the paper has no such
panel), the HR ground truth when the store has it. Every panel
carries the same crop, magnified in an inset in the opposite corner; by default the crop is the window where the chosen
methods' outputs disagree most (largest summed per-pixel standard deviation across methods), a
deterministic choice that can be overridden with `crop=(top, left, height, width)` in output pixels.

Images are read from `<results>/images/x<scale>/<method>/<scene>.png` and
`<results>/images/x<scale>/_scene/{over,under,gt}/<scene>.png`; a path that would resolve outside
its folder (a scene name such as `../x`) is treated as missing, never read. Without `--scene`, the
figure shows the first scene in sorted order among those with the most of these images.
"""

from __future__ import annotations

import hashlib
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reports.data import ReportData, ReportError
from reports.paper_reference import load_paper_reference
from reports.protocols import protocol_sentence

# The paper's Figure 3 selection in its order (from the shipped reference, `reports/reference/paper.toml`);
# `--methods` chooses others. A report shows those of them in the run's grid that have results
# (`reports.build.canonical_methods`).
DEFAULT_METHODS = load_paper_reference().figure3_methods
PANEL_INCHES = 2.1
MAX_COLUMNS = 7
INSET_COLOUR = "#ffcc00"


def safe_name(name: str) -> str:
    """A file-name part for an arbitrary string: letters, digits, `._-` and a short hash."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:48] or "scene"
    return f"{stem}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def image_path(images_dir: Path, scale: int, folder: str, scene: str) -> Path | None:
    """`images_dir/x<scale>/<folder>/<scene>.png` if it exists and lies inside that folder (a scene
    name such as `../x` never reaches another method's folder or anything outside `images_dir`)."""
    root = (images_dir / f"x{scale}" / folder).resolve()
    path = (root / f"{scene}.png").resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def load_rgb(path: Path) -> np.ndarray:
    """H x W x 3 float64 in [0, 1]."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


def enlarge(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixel repetition to at least `shape`, then cropped/padded (edge) to exactly `shape`."""
    fy = max(1, -(-shape[0] // image.shape[0]))
    fx = max(1, -(-shape[1] // image.shape[1]))
    big = np.repeat(np.repeat(image, fy, axis=0), fx, axis=1)[:shape[0], :shape[1]]
    pad = ((0, shape[0] - big.shape[0]), (0, shape[1] - big.shape[1]), (0, 0))
    return np.pad(big, pad, mode="edge") if any(p[1] for p in pad) else big


def choose_crop(images: list[np.ndarray], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, size, size): the square window of side ~1/5 of the shorter side where the images
    differ most (sum of the per-pixel standard deviation across images); the centre if < 2 images."""
    height, width = shape
    size = max(4, min(height, width) // 5)
    size = min(size, height, width)
    same = [im for im in images if im.shape[:2] == (height, width)]
    if len(same) < 2:
        return (height - size) // 2, (width - size) // 2, size, size
    spread = np.stack([im.mean(axis=2) for im in same]).std(axis=0)
    table = np.pad(spread.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(top), int(left), size, size


@dataclass
class Figure3:
    scale: int
    scene: str
    methods: list[str]
    png: Path
    pdf: Path
    crop: tuple[int, int, int, int]
    psnr: dict[str, float]
    missing: list[str]
    caption: str
    panels: list[str] = field(default_factory=list)    # each panel's title, with its letter: "(a) Over-..."


def resolve_scene(data: ReportData, scale: int, scene: str | None, methods: list[str] = ()) -> str:
    """The scene to show at `scale`: `scene` (with or without its `x<scale>/` prefix), or else the
    first in sorted order among those with the most images of `methods` (and inputs) on disk."""
    scenes = data.scenes(scale)
    if not scenes:
        raise ReportError(f"no scenes at x{scale}")
    if scene is None:
        folders = [*methods, "_scene/over", "_scene/under", "_scene/gt"]

        def found(name: str) -> int:
            return sum(image_path(data.images_dir, scale, folder, name) is not None for folder in folders)

        return max(scenes, key=found)  # max keeps the first of equals: sorted order breaks ties
    prefix = f"x{scale}/"
    name = scene[len(prefix):] if scene.startswith(prefix) else scene
    if name not in scenes:
        import difflib

        close = difflib.get_close_matches(name, scenes, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; scenes: {', '.join(scenes[:8])}"
        raise ReportError(f"no scene {scene!r} at x{scale}{hint}")
    return name


def panel_letter(index: int) -> str:
    """0 -> `(a)`, 25 -> `(z)`, 26 -> `(aa)`: the paper's panel letters, continued past z."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return f"({letters})"


def method_title(name: str) -> str:
    """A panel's method name; the paper's proposed method is `CFANet (ours)`, as the paper labels it."""
    return f"{name} (ours)" if name == load_paper_reference().proposed else name


def render_figure3(data: ReportData, scale: int, scene: str, methods: list[str], convention: str,
                   output_dir: Path, *, crop: tuple[int, int, int, int] | None = None, gt_panel: bool = False,
                   dpi: int = 150) -> Figure3:
    """Write `figure3_x<scale>_<scene>.png` and `.pdf` into `output_dir`: panels (a), (b) the inputs,
    then one per method of `methods` in that order, then the ground truth if `gt_panel` (and the store
    has it)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    images_dir = data.images_dir
    per_image = data.main_scores(scale, convention)
    psnr = {}
    for name in methods:
        key = (scene, name)
        psnr[name] = float(per_image.at[key, "psnr"]) if key in per_image.index else float("nan")

    outputs: dict[str, np.ndarray | None] = {}
    for name in methods:
        path = image_path(images_dir, scale, name, scene)
        outputs[name] = load_rgb(path) if path else None
    inputs = {role: image_path(images_dir, scale, f"_scene/{role}", scene) for role in ("over", "under", "gt")}
    gt = load_rgb(inputs["gt"]) if inputs["gt"] else None
    shapes = [im.shape[:2] for im in [gt, *outputs.values()] if im is not None]
    lr = {role: load_rgb(inputs[role]) if inputs[role] else None for role in ("over", "under")}
    if not shapes:
        shapes = [(im.shape[0] * scale, im.shape[1] * scale) for im in lr.values() if im is not None]
    shape = shapes[0] if shapes else (64, 64)  # nothing on disk: a figure of placeholders, listed as missing
    if crop is None:
        crop = choose_crop([im for im in outputs.values() if im is not None], shape)

    over_title, under_title = load_paper_reference().figure3_inputs
    panels: list[tuple[str, str, np.ndarray | None]] = [
        (over_title, f"LR, shown x{scale} (nearest)", enlarge(lr["over"], shape) if lr["over"] is not None else None),
        (under_title, f"LR, shown x{scale} (nearest)",
         enlarge(lr["under"], shape) if lr["under"] is not None else None),
    ]
    for name in methods:
        subtitle = f"{psnr[name]:.2f} dB" if np.isfinite(psnr[name]) else "no score"
        panels.append((name, subtitle, outputs[name]))
    show_gt = gt_panel and gt is not None
    if show_gt:
        panels.append(("Ground truth", "HR reference", gt))
    missing = [title for title, _, image in panels if image is None]
    titles = [f"{panel_letter(i)} {method_title(title) if title in outputs else title}"
              for i, (title, _, _) in enumerate(panels)]

    columns = min(MAX_COLUMNS, len(panels))
    rows = -(-len(panels) // columns)
    aspect = shape[0] / shape[1]
    panel_height = PANEL_INCHES * aspect + 0.42
    footer = figure_footer(data, scale, scene, convention, methods)
    footer_lines = textwrap.wrap(footer, width=int(columns * PANEL_INCHES * 14))
    footer_inches = 0.18 * len(footer_lines) + 0.15
    figure = Figure(figsize=(columns * PANEL_INCHES, rows * panel_height + footer_inches))
    grid = figure.add_gridspec(rows, columns, left=0.01, right=0.99, top=1 - 0.05 / (rows * panel_height),
                               bottom=(footer_inches + 0.05) / (rows * panel_height + footer_inches),
                               wspace=0.04, hspace=0.14)
    top, left, h, w = crop
    # the inset goes in the corner diagonally opposite the crop, so that it never hides it
    inset_box = [0.58 if left + w / 2 < shape[1] / 2 else 0.02, 0.02 if top + h / 2 < shape[0] / 2 else 0.58,
                 0.40, 0.40]
    for index, (_, subtitle, image) in enumerate(panels):
        ax = figure.add_subplot(grid[index // columns, index % columns])
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(plain_text(titles[index]), fontsize=8, pad=2)
        ax.set_xlabel(plain_text(subtitle), fontsize=8, labelpad=2)
        if image is None:
            ax.imshow(np.full(shape + (3,), 0.85), vmin=0, vmax=1)
            ax.text(0.5, 0.5, "image missing", ha="center", va="center", fontsize=8, transform=ax.transAxes)
            continue
        ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), w, h, fill=False, edgecolor=INSET_COLOUR, linewidth=1.0))
        inset = ax.inset_axes(inset_box)
        inset.imshow(np.clip(image[top:top + h, left:left + w], 0, 1), interpolation="nearest")
        inset.set_xticks([])
        inset.set_yticks([])
        for spine in inset.spines.values():
            spine.set_edgecolor(INSET_COLOUR)
            spine.set_linewidth(1.2)
    figure.text(0.01, 0.01, plain_text("\n".join(footer_lines)), fontsize=7, va="bottom", ha="left", wrap=False)

    output_dir.mkdir(parents=True, exist_ok=True)
    stem = f"figure3_x{scale}_{safe_name(scene)}"
    png, pdf = output_dir / f"{stem}.png", output_dir / f"{stem}.pdf"
    figure.savefig(png, dpi=dpi)
    figure.savefig(pdf, metadata={"Creator": "cfanet-bench report", "CreationDate": None})
    first, last = titles[2].split(" ", 1)[0] if methods else "", titles[1 + len(methods)].split(" ", 1)[0]
    proposed = load_paper_reference().proposed
    ours = f" \"Ours\" is the paper's name for {proposed}, its proposed method." if proposed in methods else ""
    span = f"{first}-{last} " if len(methods) > 1 else f"{first} " if methods else ""
    caption = (f"Scene {scene} at x{scale}: (a) the over- and (b) the under-exposed LR inputs (enlarged by "
               f"nearest-neighbour repetition), {span}the outputs of {len(methods)} methods with their PSNR on this "
               f"scene ({convention!r} convention){f' and {titles[-1].lower()}' if show_gt else ''}"
               f"{': ' if methods else ''}{', '.join(titles[2:2 + len(methods)])}.{ours} "
               f"Insets magnify the window at rows {top}-{top + h - 1}, columns {left}-{left + w - 1}. "
               f"{protocol_sentence(data, methods)}")
    return Figure3(scale, scene, list(methods), png, pdf, crop, psnr, missing, caption, titles)


def plain_text(text: str) -> str:
    """`text` as matplotlib should print it: a `$` starts no mathematics."""
    return text.replace("$", r"\$")


def figure_footer(data: ReportData, scale: int, scene: str, convention: str, methods: list[str] | None = None) -> str:
    """The text printed under the panels; `methods`: the figure's (default: every method of the report),
    whose inference protocol it states (`reports.protocols`)."""
    text = (f"Scene {scene!r}, x{scale}. PSNR convention {convention!r}. Insets: the boxed window magnified. "
            f"Inputs: LR images enlarged by pixel repetition. {protocol_sentence(data, methods)}")
    if data.demo_weights:
        text += (f" DEMO WEIGHTS: {', '.join(data.demo_weights)} ran with small configurations trained briefly "
                 f"on demo photographs, not the authors' weights.")
    return text
