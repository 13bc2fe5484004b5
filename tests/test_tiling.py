"""Tiled inference and self-ensemble: exact stitching, shapes, automatic tile size."""

import pytest
import torch
from torch import nn

from cfanet.ensemble import self_ensemble
from cfanet.tiling import _spans, _starts, auto_tile_size, tiled_apply


def _local_sr(scale):
    """A network whose receptive field is 3 conv layers of 3x3: radius 3 input pixels."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale)).double()


@pytest.mark.parametrize("scale, size, tile, overlap", [(2, (37, 53), 16, 8), (4, (20, 31), 12, 8), (2, (64, 64), 32, 10),
                                                        (3, (9, 40), 16, 6)])
def test_tiled_equals_untiled_when_overlap_covers_receptive_field(scale, size, tile, overlap):
    net = _local_sr(scale)
    x = torch.rand(2, 3, *size, dtype=torch.float64)
    with torch.no_grad():  # equal up to float64 summation order (convolution algorithms vary with size)
        assert (tiled_apply(net, x, scale, tile, overlap) - net(x)).abs().max() < 1e-13


def test_tiles_cover_the_axis_exactly_once():
    for length in (1, 7, 31, 32, 33, 100):
        for tile, overlap in ((8, 2), (16, 8), (32, 0)):
            spans = _spans(_starts(length, tile, overlap), tile, length)
            covered = [i for a, b in spans for i in range(a, b)]
            assert covered == list(range(length))


def test_no_tiling_when_tile_is_zero_or_large():
    calls = []

    def fn(t):
        calls.append(t.shape)
        return t.repeat_interleave(2, -1).repeat_interleave(2, -2)

    x = torch.rand(1, 3, 10, 12)
    tiled_apply(fn, x, 2, 0)
    tiled_apply(fn, x, 2, 12)
    assert calls == [x.shape, x.shape]
    with pytest.raises(ValueError, match="overlap"):
        tiled_apply(fn, x, 2, 6, overlap=6)


def test_auto_tile_size():
    assert auto_tile_size(1000, free_bytes=10**9, image_hw=(100, 100)) == 0  # fits whole
    side = auto_tile_size(1000, free_bytes=10**9, image_hw=(2000, 2000))
    assert side % 8 == 0 and side * side * 1000 <= 0.5 * 10**9 < (side + 8) ** 2 * 1000


def test_self_ensemble_of_equivariant_fn_is_identity_and_averages_otherwise():
    x = torch.rand(1, 3, 5, 7, dtype=torch.float64)
    up = lambda t: t.repeat_interleave(2, -1).repeat_interleave(2, -2)  # noqa: E731
    assert torch.allclose(self_ensemble(up, x), up(x))
    # a function that is not equivariant: adds a horizontal ramp; the ensemble averages it out
    ramp = torch.arange(7, dtype=torch.float64)

    def biased(t):
        return t + (ramp if t.shape[-1] == 7 else torch.arange(t.shape[-1], dtype=torch.float64))

    out = self_ensemble(biased, x)
    assert out.shape == x.shape and not torch.allclose(out, biased(x))
