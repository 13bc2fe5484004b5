"""Inference protocols: how a method is run around its network, as a per-method choice.

Every network in the benchmark is exact (its official checkpoint gives the official output in
float). What differs between our harness and the authors' release scripts is the protocol around
the network, and the paper does not say which one produced its numbers, so a method can run under
either:

- `"exact"` (the default): the network on the whole image (or exactly tiled), one float32 output
  that the harness quantises once, rounding half up, when it writes or scores the image;
- `"official"`: what the method's release script does, bit for bit: its memory devices (RCAN's and
  SRFBN's chopped quarters, SwinIR's averaged tiles), one image per forward pass, fp32, and its own
  8-bit quantisation (half-to-even rounding of `torch.round`, NumPy and OpenCV, or truncation for
  CF-Net's `astype(uint8)` and torchvision 0.2.1's `save_image`). The method then returns the
  script's 8-bit levels divided by 255 in float32, which the harness's own quantisation maps back
  to the same levels.

A method lists the protocols it has in its class's `protocols`; a method whose exact output already
is its authors' (MGFF, Fast SPD-MEF, U2Fusion) lists both and computes the same thing under each.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

EXACT, OFFICIAL = "exact", "official"
PROTOCOLS: tuple[str, ...] = (EXACT, OFFICIAL)


def check_protocol(protocol: str, supported: tuple[str, ...], method: str) -> str:
    """`protocol` when `supported` lists it; otherwise a ValueError naming the method and the choices."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"{method}: protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if protocol not in supported:
        raise ValueError(f"{method}: has no {protocol!r} protocol (it has: {', '.join(supported)})")
    return protocol


def levels_half_even(values: torch.Tensor, value_range: float = 1.0) -> torch.Tensor:
    """8-bit levels as the SR release scripts make them: clamp to [0, `value_range`], scale to
    [0, 255] in the input's dtype and round half to even (`torch.round`, `np.round`, OpenCV's
    float-to-uint8 conversion all do)."""
    scaled = values.clamp(0.0, value_range)
    if value_range != 255.0:
        scaled = scaled * (255.0 / value_range)
    return torch.round(scaled)


def levels_truncated(values: torch.Tensor) -> torch.Tensor:
    """8-bit levels of [0, 1] values by truncation: torchvision 0.2.1's `save_image`
    (`mul(255).clamp(0, 255).byte()`)."""
    return torch.floor(values.mul(255.0).clamp(0.0, 255.0))


def as_unit(levels: torch.Tensor) -> torch.Tensor:
    """8-bit levels (float) -> float32 values on [0, 1] that the harness's quantisation maps back to
    the same levels."""
    return levels.to(torch.float32) / 255.0


def one_at_a_time(fn: Callable[..., torch.Tensor], *batches: torch.Tensor) -> torch.Tensor:
    """`fn` on each sample of equal-length batches separately (release scripts run one image per
    forward pass; batching can change the floating-point summation order), outputs concatenated.
    Inputs are made contiguous: the scripts never see channels-last tensors."""
    return torch.cat([fn(*(b[i:i + 1].contiguous() for b in batches)) for i in range(batches[0].shape[0])])
