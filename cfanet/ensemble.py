"""Geometric self-ensemble (x8): average a function's outputs over the 8 flips/transposes.

The SR field's "+" results (EDSR, RCAN, DBPN, SwinIR test scripts): the input is transformed by
each element of the dihedral group of the square, the function applied, the transform undone on
the output, and the 8 results averaged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def _transform(x: torch.Tensor, k: int) -> torch.Tensor:
    """Element k of the dihedral group: k & 1 = horizontal flip, k & 2 = vertical flip, k & 4 = transpose."""
    if k & 1:
        x = x.flip(-1)
    if k & 2:
        x = x.flip(-2)
    if k & 4:
        x = x.transpose(-2, -1)
    return x


def _inverse(x: torch.Tensor, k: int) -> torch.Tensor:
    if k & 4:
        x = x.transpose(-2, -1)
    if k & 2:
        x = x.flip(-2)
    if k & 1:
        x = x.flip(-1)
    return x


def self_ensemble(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Mean over the 8 dihedral transforms of `_inverse(fn(_transform(x)))`; same shape as `fn(x)`."""
    total = None
    for k in range(8):
        y = _inverse(fn(_transform(x, k)), k)
        total = y if total is None else total + y
    return total / 8
