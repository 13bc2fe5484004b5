"""Tiled inference: run an image-to-image function on overlapping tiles and stitch the results.

Stitching crops, it does not blend: every output pixel is copied from the one tile in which it
lies farthest from the tile's border (the seams sit in the middle of each overlap). A function
whose receptive field reaches less than `overlap // 2` input pixels therefore gives the untiled
result (up to floating-point summation order); deeper networks differ only by the influence of pixels more than `overlap // 2`
away, which decays quickly (each model's tests measure it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis: stride `tile - overlap`, the last tile flush with the end."""
    if tile >= length:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride)) + [length - tile]
    return sorted(set(starts))


def _spans(starts: list[int], tile: int, length: int) -> list[tuple[int, int]]:
    """The part [a, b) of the axis each tile is responsible for: up to the middle of each overlap."""
    spans = []
    for i, start in enumerate(starts):
        a = 0 if i == 0 else (start + min(starts[i - 1] + tile, length)) // 2
        b = length if i == len(starts) - 1 else (starts[i + 1] + min(start + tile, length)) // 2
        spans.append((a, b))
    return spans


def tiled_apply(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: int, tile: int,
                overlap: int = 16) -> torch.Tensor:
    """Apply `fn` (N, C, H, W) -> (N, C', scale*H, scale*W) tile by tile; same result shape as `fn(x)`.

    `tile` is the tile side in input pixels (0 or >= the image: no tiling); `overlap` is how many
    input pixels neighbouring tiles share (it must be < tile). Output tiles are moved to `x`'s
    device as they are produced, so only one tile's activations are alive at a time.
    """
    height, width = x.shape[-2:]
    if tile <= 0 or (tile >= height and tile >= width):
        return fn(x)
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got overlap={overlap}, tile={tile}")
    rows, cols = _starts(height, tile, overlap), _starts(width, tile, overlap)
    row_spans, col_spans = _spans(rows, tile, height), _spans(cols, tile, width)
    out = None
    for top, (a, b) in zip(rows, row_spans):
        for left, (c, d) in zip(cols, col_spans):
            piece = fn(x[..., top:top + tile, left:left + tile])
            if out is None:
                out = piece.new_zeros(*piece.shape[:-2], height * scale, width * scale).to(x.device)
            out[..., a * scale:b * scale, c * scale:d * scale] = piece[
                ..., (a - top) * scale:(b - top) * scale, (c - left) * scale:(d - left) * scale].to(x.device)
    return out


def auto_tile_size(bytes_per_input_pixel: float, free_bytes: int, image_hw: tuple[int, int],
                   safety: float = 0.5, multiple: int = 8, minimum: int = 32) -> int:
    """Largest square tile (a multiple of `multiple`) whose estimated memory fits `safety * free_bytes`.

    Returns 0 (no tiling) when the whole image fits. `bytes_per_input_pixel` is the model's peak
    memory per input pixel, measured once per model, times the batch size.
    """
    budget = safety * free_bytes
    height, width = image_hw
    if height * width * bytes_per_input_pixel <= budget:
        return 0
    side = int((budget / bytes_per_input_pixel) ** 0.5)
    side -= side % multiple
    return max(side, minimum)


def free_device_memory(device: torch.device | str) -> int | None:
    """Free bytes on a CUDA device, or None for the CPU (where tiling is off unless configured)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


def tile_size_for(tile: int, device: torch.device | str, bytes_per_input_pixel: float,
                  image_hw: tuple[int, int]) -> int:
    """The tile side a model should use: `tile` when set (> 0; negative = never tile), otherwise
    0 on the CPU and, on CUDA, the largest tile that fits the free memory (0 when the image fits)."""
    if tile != 0:
        return max(tile, 0)
    free = free_device_memory(device)
    if free is None:
        return 0
    return auto_tile_size(bytes_per_input_pixel, free, image_hw)
