"""The 11x11 'valid' window statistics of SSIM and MEF-SSIM in torch, on any device, strip by strip.

Both filters are separable, first along H, then along W, and keep only the centres whose window
lies inside the image: an (..., h, w) input gives (..., h-10, w-10), float64; no padding value ever
reaches a kept output.

- `gaussian_valid`: taps `GAUSSIAN_TAPS` (MATLAB fspecial('gaussian', 11, 1.5)) in float64, applied
  as shifted-slice sums: each tap is one `add_(slice, alpha=tap)` over a strip, a pass over memory
  that stays in cache. It agrees with scipy's `correlate1d` on each axis (the float64 NumPy
  implementation this replaced) to ~1e-16 relative; only the summation order differs.
- `box_sum_valid`: unnormalised window *sums* (not means): one strided reduction along H, pairwise
  sums along W (11 = 8 + 2 + 1). On integer or dyadic data (8-bit images, their 2x2 means, and
  products of those) every partial sum is exactly representable in float64, so the result is exact
  whatever the device, summation order or thread count: flat patches get exactly zero variance, as
  in MATLAB.

Metrics walk a batch in blocks of images and strips of output rows (`blocks`, `run_blocks`): on a
CPU a strip's planes and temporaries stay in cache, where memory traffic, not arithmetic, is what a
filter costs (one `add_` per tap), and `torch.get_num_threads()` threads work on whole blocks, each
with one intra-op thread. On CUDA a block is the whole batch unless that is too large for memory.

This module imports torch; the metric modules import it only inside their functions, so that
`import cfanet.metrics` stays torch-free.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

from cfanet.metrics._window import GAUSSIAN_TAPS, WINDOW

__all__ = ["blocks", "box_sum_valid", "gaussian_valid", "row_strips", "run_blocks"]

Block = tuple[slice, int, int]  # (images of the batch, first output row, stop output row)
T = TypeVar("T")

_TAPS = tuple(float(t) for t in GAUSSIAN_TAPS)

# Elements (planes x output pixels) of one block's stack of filtered planes. CPU: ~2.4 MB of
# float64, so a strip's planes and temporaries stay in the last-level cache; measured on a 2-core
# EPYC (MEF-SSIM, 9 planes, 1000 px wide), the time per megapixel is flat from ~25 to ~50 rows and
# rises on either side. CUDA: ~0.3 GB per stack (four 1-megapixel images of MEF-SSIM with two
# sources), a few GB with the temporaries, which bounds the memory of large batches.
_CPU_STRIP_ELEMENTS = 9 * 2**15
_CUDA_STRIP_ELEMENTS = 9 * 2**22
_MIN_ROWS = 32  # below this the 10-row halo costs more than the cache saves


def _check(x: torch.Tensor) -> None:
    if x.shape[-2] < WINDOW or x.shape[-1] < WINDOW:
        raise ValueError(f"images must be at least {WINDOW}x{WINDOW} for 11x11 windows, got {tuple(x.shape[-2:])}")


def gaussian_valid(x: torch.Tensor) -> torch.Tensor:
    """Correlate the last two axes of float64 `x` (..., h, w) with the 11x11 Gaussian; valid centres.

    Returns a new float64 tensor (..., h-10, w-10) on `x`'s device: `scipy.ndimage.correlate1d` with
    these taps along H then W, cropped to the valid centres, up to float64 rounding.
    """
    _check(x)
    h, w = x.shape[-2] - WINDOW + 1, x.shape[-1] - WINDOW + 1
    cols = torch.mul(x[..., 0:h, :], _TAPS[0])
    for i in range(1, WINDOW):
        cols.add_(x[..., i : i + h, :], alpha=_TAPS[i])
    out = torch.mul(cols[..., 0:w], _TAPS[0])
    for i in range(1, WINDOW):
        out.add_(cols[..., i : i + w], alpha=_TAPS[i])
    return out


def _box_1d(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Sums of 11 consecutive entries along `dim` (-1 or -2): length n -> n - 10, exact on dyadic data."""

    def part(t: torch.Tensor, start: int, length: int) -> torch.Tensor:
        return t.narrow(dim, start, length)

    n = x.shape[dim] - WINDOW + 1
    if dim == -2:  # one strided reduction: no intermediate planes (measured 1.6x faster than below)
        return x.unfold(-2, WINDOW, 1).sum(-1)
    s2 = part(x, 0, x.shape[dim] - 1) + part(x, 1, x.shape[dim] - 1)  # sums of 2
    s4 = part(s2, 0, s2.shape[dim] - 2) + part(s2, 2, s2.shape[dim] - 2)  # sums of 4
    s8 = part(s4, 0, n) + part(s4, 4, n)  # sums of 8
    out = part(s8, 0, n) + part(s2, 8, n)  # 8 + 2 = 10 entries: i .. i+9
    return out.add_(part(x, 10, n))  # + entry i+10


def box_sum_valid(x: torch.Tensor) -> torch.Tensor:
    """Sums over every valid 11x11 window of float64 `x` (..., h, w) -> (..., h-10, w-10).

    Exact (bit for bit equal to the true sum) when every partial sum is representable, e.g. for
    integer or dyadic-rational data below 2**53 in magnitude; see the module docstring.
    """
    _check(x)
    return _box_1d(_box_1d(x, -2), -1)


def blocks(count: int, out_height: int, out_width: int, planes: int, device: torch.device | str) -> list[Block]:
    """Cut a batch of `count` maps (out_height x out_width, `planes` planes per image) into blocks.

    Returns (images, start, stop): a slice of the batch and a range of output rows. Each block's
    stack holds about the device's element budget: whole images are grouped while a group still
    gets strips of at least `_MIN_ROWS` rows (a strip of r rows reads r + 10), then each group is
    cut into balanced strips (`row_strips`). On CUDA one block is usually the whole batch.
    """
    budget = _CUDA_STRIP_ELEMENTS if torch.device(device).type == "cuda" else _CPU_STRIP_ELEMENTS
    per_row = max(1, out_width * planes)
    group = max(1, min(count, budget // (per_row * _MIN_ROWS)))
    strips = row_strips(out_height, max(_MIN_ROWS, budget // (per_row * group)))
    return [(slice(first, min(first + group, count)), start, stop)
            for first in range(0, count, group) for start, stop in strips]


def row_strips(out_height: int, rows: int) -> list[tuple[int, int]]:
    """Split output rows 0..out_height into strips of about `rows` rows, returned as (start, stop).

    Strip i needs input rows start .. stop + 9 (the 10-row halo). The strips are balanced so no
    strip is much shorter than the others (a short strip would pay the halo for few rows).
    """
    count = max(1, -(-out_height // max(1, rows)))
    edges = [round(i * out_height / count) for i in range(count + 1)]
    return [(edges[i], edges[i + 1]) for i in range(count)]


def run_blocks(work: Callable[[Block], T], plan: list[Block], device: torch.device | str) -> list[T]:
    """`[work(block) for block in plan]`, without autograd; on the CPU in parallel threads.

    On a CPU with OpenMP, up to `torch.get_num_threads()` threads each run whole blocks with one
    intra-op thread (OpenMP's thread count is per thread; each worker sets its own and leaves
    torch's setting as it found it, as `baselines.mef.mgff` does). A metric is thousands of small
    ops per megapixel; with torch's intra-op threads every op waits for all of them, and on this
    project's 2-core machines one core busy with another process made MEF-SSIM 3-10x slower than
    with one thread (measured), while independent blocks only wait at the end. Every block is
    computed by one thread in a fixed order, so results do not depend on the thread count. `work`
    must write only its own block of any shared output.
    """
    threads = torch.get_num_threads()
    single = threads > 1 and torch.device(device).type == "cpu" and torch.backends.openmp.is_available()
    workers = min(threads, len(plan)) if single else 1

    def run(block: Block) -> T:
        if single:
            torch.set_num_threads(1)
        try:
            with torch.no_grad():
                return work(block)
        finally:
            if single:
                torch.set_num_threads(threads)

    if workers <= 1:
        return [run(block) for block in plan]
    with ThreadPoolExecutor(workers, thread_name_prefix="metrics") as pool:
        return list(pool.map(run, plan))
