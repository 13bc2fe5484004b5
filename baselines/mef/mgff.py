"""MGFF: Multi-scale Guided Filter Fusion of two exposures.

Bavirisetti, Xiao, Zhao, Dhuli, Liu, "Multi-scale Guided Image and Video Fusion: A Fast and
Efficient Approach", Circuits, Systems, and Signal Processing 38 (2019). Re-implemented from the
author's MATLAB `fuse_MGF_RGB` (as shipped with VIFB / used by MEFB), arithmetic included, so that
the uint8 results equal MEFB's published `*_MGFF` files bit for bit.

The algorithm, on doubles in [0, 255], each colour channel on its own (a channel of one exposure
only ever meets the same channel of the other):

1. Guided filter (He, Sun, Tang, TPAMI 2013) with radius r = 9 (a 19 x 19 window) and
   eps = 1000 on the [0, 255] scale. Box means are window sums over the window *clipped at the
   image border* divided by the number of in-image pixels (He's cumulative-sum `boxfilter`; no
   padding).
2. Four decomposition levels with cross-guidance: starting from A1 = X1, A2 = X2, each level takes
   A1' = GF(guide=A1, input=A2) and A2' = GF(guide=A2, input=A1), i.e. each new base layer is the
   *other* image filtered with the image itself as guide. Detail layers D = A - A'.
3. Saliency |D|; per-level weights w1 = |D1| / (|D1| + |D2|), w2 = |D2| / (|D1| + |D2|). Where
   both details are 0 this is 0/0 = NaN, and the NaN propagates to the output pixel.
4. F = (A1 + A2) / 2 at the coarsest level + sum over levels of (w1 D1 + w2 D2).
5. MATLAB `uint8(F)`: round half away from zero, saturate to [0, 255], NaN -> 0.

The result is exactly symmetric in the order of the two exposures.

`MgffConfig.mefb_stretch` adds the step MEFB's wrapper applied on top (not part of MGFF): a
global min-max stretch of the uint8 result over all channels, `im2uint8(mat2gray(u))`. It changes
only results that do not already span 0..255 (3 of MEFB's 47 lossless pairs). Off by default.

Implementation: torch in float64 on the input's device (CPU or CUDA), all colour planes of all
pairs of a batch in one call. Float64 throughout, because the result must be MATLAB's doubles
rounded (the same code in float32 changes 1225 of the 9.6 M output values of the 16 MEFB test
scenes). Bit-exactness rests on MATLAB's double operations in MATLAB's order, one rounding each:
every step is its own elementwise op (never a fused multiply-add; `addcdiv`'s x + 1 * (y / z)
rounds y / z, then the sum), and every cumulative sum adds in index order, as He's `boxfilter`
does (`_WindowSums`, `_scan_`). Only the sign of a zero can differ (torch's sums start from +0),
which no output can show: the one divisor that can be zero, |D1| + |D2|, is never -0.

Speed (none of it changes a bit): the box filter streams row strips, so that the CPU's working
set stays in cache; on the CPU, groups of planes run in parallel, in up to
`torch.get_num_threads()` threads of one intra-op thread each (`_run_groups`).

Boundary convention (`fuse`, `MGFF.fuse`): float32 RGB (N, 3, H, W) in [0, 1] in, quantised to
8 bits first (round half up, as `cfanet.images.quantize`), because the official code reads 8-bit
files; float32 (N, 3, H, W) out, the uint8 result divided by 255, which is what the official code
saves, on the input's device. `fuse_uint8` takes and returns uint8 (H, W, C) NumPy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from baselines.mef.base import check_pair
from cfanet.images import quantize
from cfanet.methods import register_method

METHOD = "MGFF"

# Work sizes (speed only: any values give the same bits). Planes are fused in groups of about
# GROUP_ELEMENTS plane pixels; on the CPU the groups run in parallel, one per thread, and the box
# filter streams row strips of about STRIP_ELEMENTS values per plane stack (the working set stays in
# cache). On CUDA one strip is the whole image.
GROUP_ELEMENTS = {"cpu": 1 << 20, "cuda": 1 << 22}
STRIP_ELEMENTS = 1 << 16


@dataclass(frozen=True)
class MgffConfig:
    """MGFF's parameters: the author's r = 9, eps = 10^3 (on [0, 255] data), 4 levels.

    `mefb_stretch` applies MEFB's extra global min-max stretch (see the module docstring); switch
    it on only to reproduce MEFB's files.
    """

    radius: int = 9
    eps: float = 1000.0
    levels: int = 4
    mefb_stretch: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.radius, bool) or not isinstance(self.radius, (int, np.integer)) or self.radius < 0:
            raise ValueError(f"{METHOD}: radius must be an integer >= 0, got {self.radius!r}")
        if not np.isfinite(self.eps) or self.eps <= 0:
            raise ValueError(f"{METHOD}: eps must be finite and > 0 (on the [0, 255] scale), got {self.eps!r}")
        if isinstance(self.levels, bool) or not isinstance(self.levels, (int, np.integer)) or self.levels < 1:
            raise ValueError(f"{METHOD}: levels must be an integer >= 1, got {self.levels!r}")


# ---------------------------------------------------------------------------------------------
# Buffers and the box filter


def _empty(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """An uninitialised float64 tensor on `device`.

    On the CPU it is NumPy's: NumPy asks Linux for huge pages for large arrays, so the first
    writes to the ~100 MB a megapixel pair needs cost ~20 ms instead of ~200 ms of page faults.
    """
    if device.type == "cpu":
        return torch.from_numpy(np.empty(shape, np.float64))
    return torch.empty(shape, dtype=torch.float64, device=device)


def _scan_(x: torch.Tensor, dim: int) -> torch.Tensor:
    """In place: cumulative sums along `dim`, added one after the other in index order.

    That order is He's `boxfilter` (MATLAB's `cumsum`) and fixes the doubles. torch's CPU kernel
    adds in order along any axis. Its CUDA kernel does so (one thread walks each line) only along
    an axis that is not the innermost of a contiguous tensor, and not when that axis is the whole
    tensor (then CUB's scan adds in another order): on CUDA this scans a copy with the axis second
    to last and a spare zero column.
    """
    if x.device.type == "cpu":
        return x.cumsum_(dim)
    lines = x.movedim(dim, -1)
    return lines.copy_(torch.stack([lines, torch.zeros_like(lines)], -1).cumsum_(-2)[..., 0])


def _counts(n: int, radius: int, device: torch.device) -> torch.Tensor:
    """In-image pixels of each clipped 2r+1 window along a line of n pixels (float64, exact)."""
    index = torch.arange(n, dtype=torch.float64, device=device)
    return torch.clamp(index + radius, max=n - 1) - torch.clamp(index - radius, min=0) + 1.0


def _window_count(shape: tuple[int, int], radius: int, device: torch.device) -> torch.Tensor:
    """In-image pixels of each clipped (2r+1)^2 window, float64 (H, W) on `device` (exact)."""
    rows, cols = (_counts(n, radius, device) for n in shape)
    return rows[:, None] * cols[None, :]


def window_count(shape: tuple[int, int], radius: int) -> np.ndarray:
    """Number of in-image pixels in each clipped (2r+1)^2 window: He's `boxfilter(ones, r)`, exactly.

    float64 NumPy array (H, W).
    """
    return _window_count(shape, radius, torch.device("cpu")).numpy()


class _WindowSums:
    """(2r+1)^2 window sums, clipped at the border, of a stack of planes fed in row strips.

    The stack is (Q, P, H, W): Q quantities of P planes. He's `boxfilter` order, so the same
    doubles as MATLAB: cumulative sums C down the columns; row i of the vertical sums is
    C[min(i + r, H - 1)] - C[i - r - 1] (the second term left out for i <= r); then the same
    along each row. Each is one difference of a padded cumulative sum: r + 1 zero lines before,
    r copies of the last line after (c - 0.0 is exactly c).

    Only a sliding window of the padded vertical sums is kept (`_ring` holds logical rows
    [_low, _written)). Write rows into `rows_in(n)`, call `push(n)`, then drain `rows_out()`
    before the next push.
    """

    def __init__(self, quantities: int, planes: int, shape: tuple[int, int], radius: int, strip: int,
                 device: torch.device, scratch: tuple[torch.Tensor, torch.Tensor]):
        height, width = shape
        self.radius, self.height, self.width, self.strip = radius, height, width, strip
        most = max(strip, radius)  # the most rows pushed at once
        length = min(height + 2 * radius + 1, 2 * most + 4 * radius + 2)  # see `rows_in`
        self._ring = _empty((quantities, planes, length, width), device)
        # On the CPU the vertical cumulative sums are one add per row over all columns (vectorised
        # across columns, in row order); these are the row views, made once.
        self._lines = self._ring.unbind(2) if device.type == "cpu" else None
        # Shared between instances, used only inside `rows_out`: the horizontally padded
        # cumulative sums (columns 0..r zero) and the window sums handed out.
        self._padded, self._sums = (buffer[:quantities] for buffer in scratch)
        self.reset()

    def reset(self) -> None:
        """Start over with a new stack of planes (no rows pushed)."""
        self._ring[:, :, :self.radius + 1] = 0.0
        self._low = 0  # logical padded row held at ring index 0
        self._written = self.radius + 1  # logical padded rows written
        self._pushed = 0  # input rows pushed
        self._done = 0  # output rows handed out

    @staticmethod
    def scratch(quantities: int, planes: int, shape: tuple[int, int], radius: int, strip: int,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Working buffers for instances of at most these sizes."""
        rows = min(strip, shape[0])
        padded = _empty((quantities, planes, rows, shape[1] + 2 * radius + 1), device)
        padded[..., :radius + 1] = 0.0
        return padded, _empty((quantities, planes, rows, shape[1]), device)

    def rows_in(self, count: int) -> torch.Tensor:
        """The (Q, P, count, W) view to write the next `count` input rows into; then `push(count)`."""
        room = count + (self.radius if self._pushed + count == self.height else 0)  # the last: + the tail
        if self._written + room - self._low > self._ring.shape[2]:
            # Slide: keep logical rows [_done, _written), at most 2r + 1 after a drain. With the
            # ring length above, they start after ring row 2r + 1: no overlap with the target.
            keep, start = self._written - self._done, self._done - self._low
            self._ring[:, :, :keep].copy_(self._ring[:, :, start:start + keep])
            self._low = self._done
        at = self._written - self._low
        return self._ring[:, :, at:at + count]

    def push(self, count: int) -> None:
        """Accumulate the `count` rows just written into the vertical cumulative sums, in row order."""
        at = self._written - self._low
        first = at if self._pushed else at + 1  # the first input row starts the sums as it is
        if self._lines is not None:
            for j in range(first, at + count):
                self._lines[j].add_(self._lines[j - 1])
        elif first < at + count:  # CUDA: all rows at once (0 + c is c)
            _scan_(self._ring[:, :, first - 1:at + count], -2)
        self._written += count
        self._pushed += count
        if self._pushed == self.height:  # r copies of the last line (room made by `rows_in`)
            at = self._written - self._low
            tail = self._ring[:, :, at:at + self.radius]
            tail.copy_(self._ring[:, :, at - 1:at].expand_as(tail))
            self._written += self.radius

    def rows_out(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        """(start, stop, sums): the (Q, P, stop - start, W) window sums of each row now complete.

        `sums` is a shared buffer, valid until the next item is asked for.
        """
        r, width = self.radius, self.width
        while self._done < self.height and self._written >= self._done + 2 * r + 2:
            count = min(self._written - 2 * r - 1 - self._done, self.strip)
            at = self._done - self._low
            padded, sums = self._padded[:, :, :count], self._sums[:, :, :count]
            row_sums = padded[..., r + 1:r + 1 + width]
            torch.sub(self._ring[:, :, at + 2 * r + 1:at + 2 * r + 1 + count], self._ring[:, :, at:at + count],
                      out=row_sums)
            _scan_(row_sums, -1)
            padded[..., r + 1 + width:] = padded[..., r + width:r + 1 + width]
            torch.sub(padded[..., 2 * r + 1:], padded[..., :width], out=sums)
            self._done += count
            yield self._done - count, self._done, sums


def _as_planes(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A float64 tensor of an array or tensor."""
    return torch.from_numpy(np.asarray(x, dtype=np.float64)) if isinstance(x, np.ndarray) else x.to(torch.float64)


def _like_input(result: torch.Tensor, x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    return result.numpy() if isinstance(x, np.ndarray) else result


def box_sum(x: torch.Tensor | np.ndarray, radius: int) -> torch.Tensor | np.ndarray:
    """(2r+1)^2 window sums over the last two axes, window clipped at the border (zero outside).

    Vertical pass first, then horizontal, as He's `boxfilter.m` (the same doubles). Float64
    (..., H, W) in and out: a tensor (on its device) or a NumPy array, as given.
    """
    planes = _as_planes(x)
    shape, device = planes.shape[-2:], planes.device
    stack = planes.reshape(1, -1, *shape)
    scratch = _WindowSums.scratch(1, stack.shape[1], shape, radius, shape[0], device)
    sums = _WindowSums(1, stack.shape[1], shape, radius, shape[0], device, scratch)
    sums.rows_in(shape[0]).copy_(stack)
    sums.push(shape[0])
    (_, _, result), = sums.rows_out()  # one item: the strip is the whole height
    return _like_input(result.reshape(planes.shape), x)


def guided_filter(guide: torch.Tensor | np.ndarray, source: torch.Tensor | np.ndarray, radius: int,
                  eps: float) -> torch.Tensor | np.ndarray:
    """He's gray-guide guided filter of `source` steered by `guide`, plane by plane.

    Both float64 shaped (..., H, W), tensors or NumPy arrays; every leading index is an
    independent plane. Box means over the clipped (2r+1)^2 window. Equation numbers are He, Sun,
    Tang, TPAMI 2013. MGFF computes the same doubles streamed, two filters at once
    (`cross_guided_filter`).
    """
    i, p = _as_planes(guide), _as_planes(source)
    count = _window_count(i.shape[-2:], radius, i.device)

    def mean(x: torch.Tensor) -> torch.Tensor:
        return box_sum(x, radius) / count

    mean_i = mean(i)
    mean_p = mean(p)
    cov_ip = mean(i * p) - mean_i * mean_p
    var_i = mean(i * i) - mean_i * mean_i
    a = cov_ip / (var_i + eps)  # Eqn. (5)
    b = mean_p - a * mean_i  # Eqn. (6)
    return _like_input(mean(a) * i + mean(b), guide)  # Eqn. (8)


def _strip_rows(planes: int, shape: tuple[int, int], device: torch.device) -> int:
    """Row-strip height (speed only): about STRIP_ELEMENTS values per plane stack on the CPU."""
    if device.type != "cpu":
        return shape[0]
    return max(1, min(shape[0], math.ceil(STRIP_ELEMENTS / (planes * shape[1]))))


class _CrossGuidedFilter:
    """MGFF's cross-guided filter pair for stacks of P planes of one size, in row strips.

    `rows(bases, out)` yields (start, stop) once `out[:, :, start:stop]` holds those rows of
    (GF(guide=bases[0], input=bases[1]), GF(guide=bases[1], input=bases[0])); `bases`, `out`:
    float64 (2, P, H, W). The two filters share the box means of I1, I2 and I1 I2: 9 window sums
    instead of 12. The doubles are those of `guided_filter`. Buffers are made once, for all levels.
    """

    def __init__(self, planes: int, shape: tuple[int, int], radius: int, eps: float, strip: int,
                 device: torch.device):
        self.eps, self.strip = eps, strip
        self.count = _window_count(shape, radius, device)
        scratch = _WindowSums.scratch(5, planes, shape, radius, strip, device)
        self.moments = _WindowSums(5, planes, shape, radius, strip, device, scratch)  # I1, I2, I1^2, I2^2, I1 I2
        self.coefficients = _WindowSums(4, planes, shape, radius, strip, device, scratch)  # a1, a2, b1, b2
        rows = min(strip, shape[0])
        self.pair = _empty((2, planes, rows, shape[1]), device)
        self.single = _empty((planes, rows, shape[1]), device)

    def rows(self, bases: torch.Tensor, out: torch.Tensor) -> Iterator[tuple[int, int]]:
        moments, coefficients, count, eps = self.moments, self.coefficients, self.count, self.eps
        moments.reset()
        coefficients.reset()
        height = bases.shape[2]
        for start in range(0, height, self.strip):
            stop = min(start + self.strip, height)
            x, moment = bases[:, :, start:stop], moments.rows_in(stop - start)
            moment[0:2].copy_(x)
            torch.mul(x, x, out=moment[2:4])
            torch.mul(x[0], x[1], out=moment[4])
            moments.push(stop - start)
            for first, last, means in moments.rows_out():
                n = last - first
                means = torch.div(means, count[first:last], out=means)
                mean, var, cov, ab = means[0:2], self.pair[:, :, :n], self.single[:, :n], coefficients.rows_in(n)
                torch.sub(means[2:4], torch.mul(mean, mean, out=var), out=var)  # mean(I^2) - mean(I)^2
                torch.sub(means[4], torch.mul(means[0], means[1], out=cov), out=cov)  # mean(I p) - mean(I) mean(p)
                torch.div(cov, torch.add(var, eps, out=var), out=ab[0:2])  # a, Eqn. (5)
                torch.mul(ab[0:2], mean, out=var)
                torch.sub(means[1], var[0], out=ab[2])  # b = mean(p) - a mean(I), Eqn. (6)
                torch.sub(means[0], var[1], out=ab[3])
                coefficients.push(n)
                for begin, end, sums in coefficients.rows_out():
                    q, rows_count = out[:, :, begin:end], count[begin:end]
                    torch.mul(torch.div(sums[0:2], rows_count, out=sums[0:2]), bases[:, :, begin:end], out=q)
                    # + mean(b): Eqn. (8). addcdiv's x + 1 * (y / z) rounds exactly as y / z, then the sum.
                    torch.addcdiv(q, sums[2:4], rows_count, out=q)
                    yield begin, end


def cross_guided_filter(x1: torch.Tensor | np.ndarray, x2: torch.Tensor | np.ndarray, radius: int,
                        eps: float) -> tuple[torch.Tensor, torch.Tensor] | tuple[np.ndarray, np.ndarray]:
    """MGFF's cross-guided pair `(guided_filter(x1, x2), guided_filter(x2, x1))`, the same doubles.

    Float64 planes (..., H, W) of one shape, tensors or NumPy arrays; computed as `fuse` does.
    """
    a, b = _as_planes(x1), _as_planes(x2)
    bases = torch.stack([a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:])])
    out = torch.empty_like(bases)
    planes, shape, device = bases.shape[1], tuple(a.shape[-2:]), a.device
    cross_guided = _CrossGuidedFilter(planes, shape, radius, eps, _strip_rows(planes, shape, device), device)
    for _ in cross_guided.rows(bases, out):
        pass
    return _like_input(out[0].reshape(a.shape), x1), _like_input(out[1].reshape(b.shape), x2)


# ---------------------------------------------------------------------------------------------
# Fusion


def _round_matlab(x: torch.Tensor, out: torch.Tensor, whole: torch.Tensor, part: torch.Tensor) -> None:
    """out = MATLAB's uint8(x): round half away from zero, saturate to [0, 255], NaN -> 0.

    `whole` and `part` are scratch of x's shape (float64)."""
    torch.trunc(x, out=whole)
    torch.sub(x, whole, out=part).abs_().ge_(0.5)  # |fraction| >= 0.5 (the subtraction is exact)
    whole.add_(part.mul_(torch.sign(x)))
    out.copy_(whole.nan_to_num_(nan=0.0).clamp_(0, 255))


def _fuse_stack(bases: torch.Tensor, config: MgffConfig, rounded: torch.Tensor | None = None) -> torch.Tensor:
    """MGFF of stacked plane pairs: float64 (2, P, H, W) in [0, 255] (overwritten) -> the unrounded
    fused planes (P, H, W); with `rounded` (uint8 (P, H, W)) also MATLAB's uint8 of them.

    Level by level; within a level, the detail and weight arithmetic runs on each row strip as
    soon as the cross-guided filter has finished it, while it is in cache.
    """
    planes, height, width = bases.shape[1:]
    device = bases.device
    strip = _strip_rows(planes, (height, width), device)
    rows = min(strip, height)
    fused, following = _empty(bases.shape[1:], device), _empty(bases.shape, device)
    detail, weight = _empty((2, planes, rows, width), device), _empty((2, planes, rows, width), device)
    level_detail = _empty((planes, rows, width), device)
    cross_guided = _CrossGuidedFilter(planes, (height, width), config.radius, config.eps, strip, device)
    for level in range(config.levels):
        # Cross-guidance: each new base layer is the other image filtered with this one as guide.
        for start, stop in cross_guided.rows(bases, following):
            n = stop - start
            base, new_base, f = bases[:, :, start:stop], following[:, :, start:stop], fused[:, start:stop]
            d, w, total = detail[:, :, :n], weight[:, :, :n], level_detail[:, :n]
            torch.sub(base, new_base, out=d)  # detail layers
            torch.abs(d, out=w)  # saliency
            torch.add(w[0], w[1], out=total)
            torch.div(w, total, out=w)  # weights; 0/0 = NaN, kept on purpose (the author's code)
            torch.mul(d, w, out=d)
            if level == 0:
                torch.add(d[0], d[1], out=f)
            else:
                torch.add(f, torch.add(d[0], d[1], out=total), out=f)
            if level == config.levels - 1:
                torch.add(torch.mul(torch.add(new_base[0], new_base[1], out=total), 0.5, out=total), f, out=f)
                if rounded is not None:
                    _round_matlab(f, rounded[:, start:stop], d[0], d[1])
        bases, following = following, bases
    return fused


def _groups(planes: int, shape: tuple[int, int], device: torch.device, workers: int) -> list[slice]:
    """Groups of planes fused together (speed and memory only; the result is the same): about
    GROUP_ELEMENTS plane pixels each, and at least one group per worker where there are planes enough."""
    step = max(1, GROUP_ELEMENTS.get(device.type, GROUP_ELEMENTS["cuda"]) // (shape[0] * shape[1]))
    step = min(step, math.ceil(planes / workers))
    return [slice(start, min(start + step, planes)) for start in range(0, planes, step)]


def _workers(device: torch.device) -> int:
    """Threads fusing groups of planes in parallel: on the CPU with OpenMP, `torch.get_num_threads()`
    (each thread then runs its ops on one intra-op thread); else 1."""
    return torch.get_num_threads() if device.type == "cpu" and torch.backends.openmp.is_available() else 1


def _run_groups(fuse_group, groups: list[slice], workers: int) -> None:
    """`fuse_group(group)` for each group, without autograd, in `workers` threads.

    With several workers, each op runs on one intra-op thread: MGFF is tens of thousands of small
    ops per megapixel, and with torch's intra-op threads every op waits for all of them, so a core
    busy with another process made the whole 4 to 40 times slower (measured on 2 cores). OpenMP's
    thread count is per thread; each worker sets its own and leaves torch's setting as it found it.
    """

    def run(group: slice) -> None:
        if workers > 1:
            torch.set_num_threads(1)
        try:
            with torch.no_grad():
                fuse_group(group)
        finally:
            if workers > 1:
                torch.set_num_threads(workers)

    if workers <= 1 or len(groups) <= 1:
        for group in groups:
            run(group)
        return
    with ThreadPoolExecutor(min(workers, len(groups)), thread_name_prefix="mgff") as pool:
        for _ in pool.map(run, groups):
            pass


def _fuse_all(x1: torch.Tensor, x2: torch.Tensor, config: MgffConfig, load, rounded: bool) -> torch.Tensor:
    """MGFF of plane pairs (P, H, W) on one device, `load(source, out)` writing the float64 [0, 255]
    values of a group of planes: uint8 MATLAB-rounded planes if `rounded`, else unrounded float64."""
    device, shape = x1.device, tuple(x1.shape[1:])
    out = torch.empty(x1.shape, dtype=torch.uint8 if rounded else torch.float64, device=device)

    def fuse_group(group: slice) -> None:
        bases = _empty((2, group.stop - group.start, *shape), device)
        load(x1[group], bases[0])
        load(x2[group], bases[1])
        fused = _fuse_stack(bases, config, out[group] if rounded else None)
        if not rounded:
            out[group] = fused

    workers = _workers(device)
    _run_groups(fuse_group, _groups(x1.shape[0], shape, device, workers), workers)
    return out


def _copy(source: torch.Tensor, out: torch.Tensor) -> None:
    out.copy_(source)


def _load_levels(image: torch.Tensor, out: torch.Tensor) -> None:
    """out = the 8-bit levels of [0, 1] planes (P, H, W) as float64 in [0, 255], rounded as
    `cfanet.images.quantize` rounds (NaN -> 0, clipped, round half up): on the CPU by it, in row
    blocks (cache); on CUDA by its arithmetic, on the device."""
    if out.device.type == "cpu":
        block = max(1, STRIP_ELEMENTS // (image.shape[0] * image.shape[2]))
        for start in range(0, image.shape[1], block):
            out[:, start:start + block].copy_(torch.from_numpy(quantize(image[:, start:start + block])))
    else:
        out.copy_(image).nan_to_num_(nan=0.0).clamp_(0.0, 1.0).mul_(255.0).add_(0.5).floor_()


def fuse_planes(x1: torch.Tensor | np.ndarray, x2: torch.Tensor | np.ndarray,
                config: MgffConfig = MgffConfig()) -> torch.Tensor | np.ndarray:
    """MGFF on float64 planes in [0, 255] shaped (..., H, W); returns the unrounded fused planes.

    Tensors (computed on the device of `x1`) or NumPy arrays; the result is of the kind of `x1`.
    Every leading index (channel, batch item) is fused on its own, as the author's code does
    channel by channel. The result holds NaN where both detail layers of some level are 0 at a
    pixel (the author's 0/0).
    """
    a = _as_planes(x1)
    b = _as_planes(x2).to(a.device)
    if a.shape != b.shape:
        raise ValueError(f"{METHOD}: planes differ in shape: {tuple(a.shape)} and {tuple(b.shape)}")
    shape = a.shape[-2:]
    fused = _fuse_all(a.reshape(-1, *shape), b.reshape(-1, *shape), config, _copy, rounded=False)
    return _like_input(fused.reshape(a.shape), x1)


def matlab_uint8(x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """MATLAB's `uint8(x)` for doubles: round half away from zero, saturate to [0, 255], NaN -> 0.

    A tensor (on its device) or a NumPy array in, uint8 of the same kind and shape out.
    """
    values = _as_planes(x)
    out = torch.empty(values.shape, dtype=torch.uint8, device=values.device)
    _round_matlab(values, out, torch.empty_like(values), torch.empty_like(values))
    return _like_input(out, x)


def _stretch(u: torch.Tensor) -> torch.Tensor:
    """`im2uint8(mat2gray(u))` of one uint8 image (any shape) in MATLAB's arithmetic (see `mefb_stretch`)."""
    low, high = float(u.min()), float(u.max())
    values = u.to(torch.float64)
    if high != low:
        delta = 1.0 / (high - low)
        values = values * delta + (-low * delta)
    return torch.floor(values.clamp_(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)


def mefb_stretch(u: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """MEFB's post-step `im2uint8(mat2gray(u))` on a uint8 image: global min-max stretch to 0..255.

    `mat2gray` computes delta = 1 / (max - min) and v = delta * u + (-min * delta) (via
    `imlincomb`), clipped to [0, 1]; `im2uint8` rounds 255 v half up. Writing it as
    (u - min) / (max - min) differs by one level at some pixels. A constant image is left as
    `mat2gray` leaves it: values clipped to [0, 1], so any nonzero constant becomes 255. A uint8
    tensor or NumPy array, as given; min and max over all of it.
    """
    return _stretch(torch.from_numpy(u)).numpy() if isinstance(u, np.ndarray) else _stretch(u)


def fuse_uint8(over_u8: np.ndarray, under_u8: np.ndarray, config: MgffConfig = MgffConfig()) -> np.ndarray:
    """Fuse two uint8 exposures (H, W, C) or (H, W) of equal shape; uint8 of the same shape.

    This is the author's `uint8(fuse_MGF_RGB(I1, I2, 9, 1e3))` (each channel independently; for
    (H, W) gray input it is the author's `fuse_MGF` followed by the same uint8 conversion), plus
    MEFB's stretch when `config.mefb_stretch`. The order of the two exposures does not matter.
    Runs on the CPU.
    """
    for role, image in (("over", over_u8), ("under", under_u8)):
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
            kind = (f"{image.dtype} array shaped {image.shape}" if isinstance(image, np.ndarray)
                    else type(image).__name__)
            raise ValueError(f"{METHOD}: {role} must be a uint8 array shaped (H, W, C) or (H, W), got {kind}")
    if over_u8.shape != under_u8.shape:
        raise ValueError(f"{METHOD}: exposures differ in shape: over {over_u8.shape}, under {under_u8.shape}")
    if over_u8.size == 0:
        raise ValueError(f"{METHOD}: empty image, shape {over_u8.shape}")
    x1, x2 = (torch.from_numpy(image) for image in (over_u8, under_u8))
    x1, x2 = (x.permute(2, 0, 1) if x.dim() == 3 else x[None] for x in (x1, x2))
    out = _fuse_all(x1, x2, config, _copy, rounded=True)
    if config.mefb_stretch:
        out = _stretch(out)
    return np.ascontiguousarray(out.permute(1, 2, 0).numpy()) if over_u8.ndim == 3 else out[0].numpy()


def fuse(over: torch.Tensor, under: torch.Tensor, config: MgffConfig = MgffConfig()) -> torch.Tensor:
    """Harness boundary: float32 RGB (N, 3, H, W) in [0, 1] -> fused float32 (N, 3, H, W) in [0, 1].

    The inputs are first quantised to 8 bits (round half up; NaN -> 0, out-of-range values
    clipped), as the official code reads 8-bit files. The output is the uint8 result / 255 (what
    the official code saves, read back). Computed on the device of `over`, all 3N planes of the
    N pairs together; the same bits on the CPU and on CUDA.
    """
    check_pair(over, under, METHOD)
    if over.numel() == 0:
        raise ValueError(f"{METHOD}: empty input, shape {tuple(over.shape)}")
    x1, x2 = (image.reshape(-1, *image.shape[2:]) for image in (over, under.to(over.device)))
    out = _fuse_all(x1, x2, config, _load_levels, rounded=True).reshape(over.shape)
    if config.mefb_stretch:  # per image: min and max over its own three channels
        out = torch.stack([_stretch(image) for image in out])
    # k / 255 in float32, as NumPy divides (a tensor divisor: CUDA would multiply by 1/255 instead)
    return out.to(torch.float32).div_(torch.tensor(255.0, dtype=torch.float32, device=out.device))


@register_method("mef", deep=False, paper_order=1)
class MGFF:
    """Registry entry: `MGFF(config).fuse(over, under)` with the boundary convention of `fuse`.

    Protocols (`cfanet.protocols`): its output is the authors' MATLAB code's bit for bit (MEFB's
    published images), so "exact" and "official" are the same computation.
    """

    name = METHOD
    protocols = ("exact", "official")

    def __init__(self, config: MgffConfig = MgffConfig()):
        if not isinstance(config, MgffConfig):
            raise ValueError(f"{METHOD}: config must be an MgffConfig, got {type(config).__name__}")
        self.config = config

    def fuse(self, over: torch.Tensor, under: torch.Tensor) -> torch.Tensor:
        return fuse(over, under, self.config)

    def __repr__(self) -> str:
        return f"MGFF({self.config})"
