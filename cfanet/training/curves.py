"""The training curve: loss per step, validation PSNR under both conventions and validation
MEF-SSIM, as one PNG (matplotlib's Agg canvas, so no display and no global backend switch are
needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over up to `window` values (the first points average what exists)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return v
    cumulative = np.cumsum(np.insert(v, 0, 0.0))
    counts = np.minimum(np.arange(1, v.size + 1), window)
    return (cumulative[1:] - cumulative[np.arange(1, v.size + 1) - counts]) / counts


def _no_scores(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no validation {what}", ha="center", va="center", transform=ax.transAxes)


def plot_training_curves(losses: Sequence[float], history: Sequence[dict], path: str | os.PathLike,
                         title: str = "") -> Path:
    """Write a three-panel PNG: the training loss per step (raw and a moving average); the
    validation PSNR (dB) under the 'paper' and 'sr' conventions, the best 'paper' one (the one
    `best.pt` holds) marked; the validation MEF-SSIM. Written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(14, 4), dpi=100)
    FigureCanvasAgg(figure)
    ax_loss, ax_psnr, ax_mef = figure.subplots(1, 3)
    steps = np.arange(1, len(losses) + 1)
    if len(losses):
        ax_loss.plot(steps, losses, color="0.75", linewidth=0.8, label="per step")
        ax_loss.plot(steps, moving_average(losses, max(1, len(losses) // 50)), color="C0", label="moving average")
        ax_loss.legend(loc="upper right")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_title("training loss")
    ax_loss.grid(alpha=0.3)

    from cfanet.training.trainer import VALIDATION_CONVENTIONS, validation_key

    drawn = False
    for i, convention in enumerate(VALIDATION_CONVENTIONS):
        key = validation_key("psnr", convention)
        scored = [h for h in history if h.get(key) is not None]
        if scored:
            drawn = True
            ax_psnr.plot([h["step"] for h in scored], [h[key] for h in scored], marker="o", markersize=3,
                         color=f"C{i + 1}", label=f"'{convention}' convention")
    selecting = validation_key("psnr", VALIDATION_CONVENTIONS[0])   # the score that selects best.pt
    scored = [h for h in history if h.get(selecting) is not None]
    if scored:
        best = max(scored, key=lambda h: h[selecting])
        ax_psnr.plot([best["step"]], [best[selecting]], marker="*", markersize=12, color="C3", linestyle="none",
                     label=f"best {best[selecting]:.2f} dB (step {best['step']}, selects best.pt)")
    if drawn:
        ax_psnr.legend(loc="best")
    else:
        _no_scores(ax_psnr, "scores")
    ax_psnr.set_xlabel("step")
    ax_psnr.set_ylabel("PSNR (dB)")
    ax_psnr.set_title("validation PSNR")
    ax_psnr.grid(alpha=0.3)

    mef_key = validation_key("mef_ssim")
    scored = [h for h in history if h.get(mef_key) is not None]
    if scored:
        ax_mef.plot([h["step"] for h in scored], [h[mef_key] for h in scored], marker="o", markersize=3,
                    color="C4", label="MEF-SSIM")
    else:
        _no_scores(ax_mef, "MEF-SSIM")
    ax_mef.set_xlabel("step")
    ax_mef.set_ylabel("MEF-SSIM")
    ax_mef.set_title("validation MEF-SSIM")
    ax_mef.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        figure.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
