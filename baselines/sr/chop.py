"""The quarter chopping of the EDSR-family test code (RCAN's `Model.forward_chop`, SRFBN's
`SRSolver._overlap_crop_forward`): a memory device of the release scripts, reproduced exactly for
their official protocol (`cfanet.protocols`)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def chop_forward(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: int, shave: int,
                 min_size: int, group: int = 1) -> torch.Tensor:
    """`fn` on four quarters of `x` that overlap by `shave` pixels (each quarter chopped again while
    it has `min_size` pixels or more), stitched at the middle.

    `group` quarters go through `fn` together, concatenated along the batch (the scripts' `n_GPUs`:
    1 for RCAN's release script, 2 hard-coded in SRFBN's), which can change the floating-point
    summation order. The official code fails on sides shorter than about `2 * shave`; we run such
    inputs whole.
    """
    height, width = x.shape[-2:]
    h_half, w_half = height // 2, width // 2
    h_size, w_size = h_half + shave, w_half + shave
    if h_size > height or w_size > width:
        return fn(x)
    quarters = [x[..., :h_size, :w_size], x[..., :h_size, width - w_size:],
                x[..., height - h_size:, :w_size], x[..., height - h_size:, width - w_size:]]
    if h_size * w_size < min_size:
        outs: list[torch.Tensor] = []
        for first in range(0, 4, group):
            batch = quarters[first:first + group]
            outs.extend(fn(torch.cat(batch)).chunk(len(batch)) if len(batch) > 1 else [fn(batch[0])])
    else:
        outs = [chop_forward(fn, quarter, scale, shave, min_size, group) for quarter in quarters]
    # Output pixels: each quarter fills its own quadrant; the lower and right quarters start
    # `height - h_size` rows and `width - w_size` columns into the image.
    top, left = scale * (height - h_size), scale * (width - w_size)
    rows, cols = scale * h_half, scale * w_half
    out = outs[0].new_empty(*outs[0].shape[:-2], scale * height, scale * width)
    out[..., :rows, :cols] = outs[0][..., :rows, :cols]
    out[..., :rows, cols:] = outs[1][..., :rows, cols - left:]
    out[..., rows:, :cols] = outs[2][..., rows - top:, :cols]
    out[..., rows:, cols:] = outs[3][..., rows - top:, cols - left:]
    return out
