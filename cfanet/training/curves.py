"""The training curve: loss per step and validation PSNR, as one PNG (matplotlib's Agg canvas,
so no display and no global backend switch are needed)."""

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


def plot_training_curves(losses: Sequence[float], history: Sequence[dict], path: str | os.PathLike,
                         title: str = "") -> Path:
    """Write a two-panel PNG: the training loss per step (raw and a moving average) and the
    validation PSNR (dB) at each validation, the best one marked. Written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(figure)
    ax_loss, ax_psnr = figure.subplots(1, 2)
    steps = np.arange(1, len(losses) + 1)
    if len(losses):
        ax_loss.plot(steps, losses, color="0.75", linewidth=0.8, label="per step")
        ax_loss.plot(steps, moving_average(losses, max(1, len(losses) // 50)), color="C0", label="moving average")
        ax_loss.legend(loc="upper right")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_title("training loss")
    ax_loss.grid(alpha=0.3)

    scored = [h for h in history if h.get("val_psnr") is not None]
    if scored:
        x = [h["step"] for h in scored]
        y = [h["val_psnr"] for h in scored]
        ax_psnr.plot(x, y, marker="o", markersize=3, color="C1", label="validation PSNR")
        best = max(scored, key=lambda h: h["val_psnr"])
        ax_psnr.plot([best["step"]], [best["val_psnr"]], marker="*", markersize=12, color="C3", linestyle="none",
                     label=f"best {best['val_psnr']:.2f} dB (step {best['step']})")
        ax_psnr.legend(loc="lower right")
    else:
        ax_psnr.text(0.5, 0.5, "no validation scores", ha="center", va="center", transform=ax_psnr.transAxes)
    ax_psnr.set_xlabel("step")
    ax_psnr.set_ylabel("PSNR (dB)")
    ax_psnr.set_title("validation PSNR ('paper' convention)")
    ax_psnr.grid(alpha=0.3)
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
