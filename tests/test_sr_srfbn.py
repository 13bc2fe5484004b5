"""SRFBN (baselines/sr/srfbn.py): official state-dict layout, checkpoint loading, protocol, tiling.

Parity with the official code (checked by hand, and by `test_matches_official_module` on the official
files in ../shared/official/SRFBN_CVPR19, or a checkout named by `SRFBN_OFFICIAL_REPO`; see
`official_code.py`): Paper99/SRFBN_CVPR19 at commit
046f693afc58dc53f240a7d85ea78213eec08490, `networks/srfbn_arch.py` (`SRFBN`, `FeedbackBlock`) with
`networks/blocks.py`. The only patch needed on CPU is `FeedbackBlock.forward`'s
`torch.zeros(x.size()).cuda()` (the test below makes `Tensor.cuda` a no-op instead of editing the
file). Both modules get the same seeded weights (`SRFBN.create(scale, "official", seed=0)`, its
`state_dict()` loaded strictly into the official module) and the same input, a 64x56 crop of
`skimage.data.astronaut()[100:164, 180:236]`; the official protocol is `SRSolver.test` without chop:
float RGB on [0, 255] in, the last step's output, divided by 255 here. Result: max |difference| = 0
(bit-identical) for x2 and x4, for every step's output, before and after clamping, and 0 of the
8-bit quantised values differ. To repeat it:

    git clone https://github.com/Paper99/SRFBN_CVPR19 /tmp/SRFBN_CVPR19
    git -C /tmp/SRFBN_CVPR19 checkout 046f693afc58dc53f240a7d85ea78213eec08490
    SRFBN_OFFICIAL_REPO=/tmp/SRFBN_CVPR19 pytest -q tests/test_sr_srfbn.py -k matches_official

(without the variable the test takes ../shared/official/SRFBN_CVPR19, the same files).

The test imports the unmodified `networks.srfbn_arch` from there and compares on a 16x12 crop (the
figures above are the same comparison on the 64x56 crop, run once by hand: it takes minutes on CPU).

Tiling (stitching by crops, `cfanet.tiling`): with seeded weights (the official Kaiming
initialisation; trained weights may reach farther, not measured for want of the files), tiled vs untiled max |difference|
on [0, 1] for an astronaut crop whose size makes the tiles share exactly the nominal overlap
(side = 2 * tile - overlap, tile 40):

    overlap           8        16       24       32
    official x2    1.5e-2   5.2e-4   1.1e-5   2.1e-7
    official x4    1.9e-4   1.8e-7   1.2e-7   1.2e-7
    small x2       2.5e-2   7.0e-4   2.2e-6   0
    small x4       2.1e-4   0        0        0

so the model's default overlap is 32 (`SRFBN.default_tile_overlap`); the test checks it on the
small configuration (the official one takes too long on CPU for the suite). The projection groups reach
farther at x2 (kernel 6, stride 2: three LR pixels per projection) than at x4 (kernel 8, stride 4).

Regression fixture: `tests/fixtures/sr_srfbn_regression.npz`, made by `make_regression_fixture`
below; regenerate it (only after an intended change of the outputs) with

    python tests/test_sr_srfbn.py --regen
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.data import astronaut

from baselines.sr.srfbn import SRFBN, SRFBNNet
from cfanet.checkpoint import CheckpointError, CheckpointMismatchError
from cfanet.ensemble import _inverse, _transform

from official_code import official_dir, official_imports

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REGRESSION = FIXTURES / "sr_srfbn_regression.npz"
# Regression inputs: astronaut crops (H, W), one per scale.
REGRESSION_CROPS = {2: (slice(100, 124), slice(180, 200)), 4: (slice(100, 112), slice(180, 190))}


def _astronaut(rows: slice, cols: slice) -> torch.Tensor:
    """A crop of skimage's astronaut as float32 RGB (1, 3, H, W) in [0, 1]."""
    crop = np.ascontiguousarray(astronaut()[rows, cols])
    return torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255


def make_regression_fixture(path: Path = REGRESSION) -> None:
    """Write the small configuration's outputs (seed 0) on the regression inputs."""
    arrays = {}
    for scale, (rows, cols) in REGRESSION_CROPS.items():
        lr = _astronaut(rows, cols)
        arrays[f"x{scale}_input"] = (lr[0] * 255).round().to(torch.uint8).numpy()
        arrays[f"x{scale}_output"] = SRFBN.create(scale, "small", seed=0).upscale(lr)[0].numpy()
    np.savez_compressed(path, **arrays)


# -- official state-dict layout -----------------------------------------------------------------------

def _golden(scale: int) -> tuple[str, list[tuple[str, list[int]]]]:
    header, *lines = (FIXTURES / "statedicts" / f"srfbn_x{scale}.txt").read_text().splitlines()
    entries = []
    for line in lines:
        name, shape = line.split(" ", 1)
        entries.append((name, [int(v) for v in shape.strip("[]").split(",") if v.strip()]))
    return header, entries


@pytest.mark.parametrize("scale", [2, 4])
def test_state_dict_matches_golden_list(scale):
    header, entries = _golden(scale)
    network = SRFBN.build_network(scale, **SRFBN.configs["official"])
    assert [(k, list(v.shape)) for k, v in network.state_dict().items()] == entries
    count = sum(p.numel() for p in network.parameters())
    assert header == f"# srfbn_x{scale}: {len(entries)} entries, {count} parameters"


def test_small_config_is_the_same_code_path():
    official = SRFBN.build_network(2, **SRFBN.configs["official"]).state_dict()
    small = SRFBN.build_network(2, **SRFBN.configs["small"]).state_dict()
    assert set(small) <= set(official)   # fewer groups drop transition blocks, nothing new appears
    assert SRFBN.create(2, "small").num_parameters < 100_000


# -- checkpoints ---------------------------------------------------------------------------------------

def _save_official_container(model: SRFBN, path: Path) -> None:
    """As the official `SRSolver.save_checkpoint` writes it: a DataParallel state dict and training state."""
    weights = {f"module.{k}": v for k, v in model.network.state_dict().items()}
    torch.save({"epoch": 1000, "state_dict": weights, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]},
                "best_pred": 38.1, "best_epoch": 990, "records": {"psnr": [37.9, 38.1], "lr": [1e-4, 1e-4]}}, path)


@pytest.mark.parametrize("scale", [2, 4])
def test_official_container_round_trip_infers_scale(tmp_path, scale):
    source = SRFBN.create(scale, "official", seed=3)
    path = tmp_path / f"SRFBN_x{scale}_BI.pth"
    _save_official_container(source, path)
    loaded = SRFBN.from_checkpoint(path)
    assert loaded.scale == scale and loaded.weights == str(path)
    for name, value in source.network.state_dict().items():
        assert torch.equal(loaded.network.state_dict()[name], value), name
    lr = _astronaut(slice(100, 108), slice(180, 187))
    assert torch.equal(loaded.upscale(lr), source.upscale(lr))


def test_scale_mismatch_fails_clearly(tmp_path):
    path = tmp_path / "SRFBN_x4_BI.pth"
    _save_official_container(SRFBN.create(4, "small"), path)
    with pytest.raises(CheckpointError, match=r"x4 SRFBN checkpoint, but x2 was asked for"):
        SRFBN.from_checkpoint(path, scale=2, size="small")


def test_renamed_and_missing_keys_are_named(tmp_path):
    weights = dict(SRFBN.create(2, "small").network.state_dict())
    weights["block.compress_in.weight"] = weights.pop("block.compress_in.0.weight")
    del weights["add_mean.bias"]
    path = tmp_path / "broken.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in weights.items()}}, path)
    with pytest.raises(CheckpointMismatchError) as excinfo:
        SRFBN.from_checkpoint(path, size="small")
    message = str(excinfo.value)
    assert "block.compress_in.0.weight" in message and "add_mean.bias" in message
    assert "unexpected keys (1): block.compress_in.weight" in message


def test_infer_scale_from_deconvolution_kernel():
    for scale in (2, 3, 4, 8):
        assert SRFBN.infer_scale(SRFBN.build_network(scale, **SRFBN.configs["small"]).state_dict()) == scale
    assert SRFBN.infer_scale({"conv_in.0.weight": torch.zeros(1)}) is None


# -- outputs -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [2, 4])
def test_regression_fixture(scale):
    expected = np.load(REGRESSION)
    lr = _astronaut(*REGRESSION_CROPS[scale])
    assert np.array_equal((lr[0] * 255).round().to(torch.uint8).numpy(), expected[f"x{scale}_input"])
    out = SRFBN.create(scale, "small", seed=0).upscale(lr)[0].numpy()
    np.testing.assert_allclose(out, expected[f"x{scale}_output"], rtol=0, atol=1e-5)


def test_every_step_is_an_image_and_the_last_is_the_result():
    model = SRFBN.create(2, "small", seed=0)
    lr = _astronaut(slice(100, 112), slice(180, 190))
    with torch.no_grad():
        steps = model.network(lr * 255)
        last_only = model.network(lr * 255, all_steps=False)
    assert len(steps) == SRFBN.configs["small"]["num_steps"] and len(last_only) == 1
    assert torch.equal(last_only[0], steps[-1])
    assert not torch.equal(steps[0], steps[-1])   # the feedback changes the result
    assert torch.equal(model.upscale(lr), (steps[-1] / 255).clamp(0, 1))


def test_stateless_across_calls():
    model = SRFBN.create(2, "small", seed=0)
    a = _astronaut(slice(100, 116), slice(180, 194))
    b = _astronaut(slice(300, 310), slice(300, 322))
    alone_a, alone_b = model.upscale(a), SRFBN.create(2, "small", seed=0).upscale(b)
    assert torch.equal(model.upscale(b), alone_b)
    assert torch.equal(model.upscale(a), alone_a)


@pytest.mark.parametrize("scale", [2, 4])
def test_tiled_equals_untiled_with_default_overlap(scale):
    overlap, tile = SRFBN.default_tile_overlap, 48
    side = 2 * tile - overlap   # two tiles per axis sharing exactly `overlap` input pixels
    lr = _astronaut(slice(60, 60 + side), slice(150, 150 + side + 5))   # and three along the width
    model = SRFBN.create(scale, "small", seed=0)
    assert model.tile_overlap == overlap
    whole = model.upscale(lr)
    model.tile = tile
    tiled = model.upscale(lr)
    assert tiled.shape == whole.shape == (1, 3, scale * side, scale * (side + 5))
    assert (tiled - whole).abs().max() < 1e-4


def test_self_ensemble_is_the_mean_of_the_eight_transforms():
    model = SRFBN.create(2, "small", seed=0)
    lr = _astronaut(slice(100, 113), slice(180, 190))   # not square: the transposes change the shape
    with torch.no_grad():
        runs = [_inverse(model.forward_protocol(_transform(lr, k)), k) for k in range(8)]
    expected = (torch.stack(runs).mean(0)).clamp(0, 1)
    model.use_self_ensemble = True
    out = model.upscale(lr)
    assert out.shape == (1, 3, 26, 20)
    assert (out - expected).abs().max() < 1e-6


# -- the upscale contract ------------------------------------------------------------------------------

@pytest.mark.parametrize("scale, size", [(2, (13, 17)), (4, (7, 11))])
def test_upscale_contract(scale, size):
    model = SRFBN.create(scale, "small", seed=0)
    lr = _astronaut(slice(100, 100 + size[0]), slice(180, 180 + size[1])).repeat(2, 1, 1, 1)
    out = model.upscale(lr)
    assert out.dtype == torch.float32 and out.shape == (2, 3, scale * size[0], scale * size[1])
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out[0], out[1])
    assert torch.equal(model.upscale(lr.double()), out)


@pytest.mark.parametrize("bad", [torch.rand(3, 8, 8), torch.rand(1, 4, 8, 8), torch.rand(1, 1, 8, 8),
                                 torch.zeros(1, 3, 8, 8, dtype=torch.uint8), np.zeros((1, 3, 8, 8), np.float32)])
def test_malformed_input_raises(bad):
    with pytest.raises(ValueError, match="SRFBN"):
        SRFBN.create(2, "small").upscale(bad)


def test_unknown_configuration_and_scale():
    with pytest.raises(ValueError, match="unknown configuration"):
        SRFBN.create(2, "large")
    with pytest.raises(ValueError, match="scales"):
        SRFBNNet(5)


# -- parity with the official module (needs the official files: skipped without them, fails in CI) --------

@pytest.mark.parametrize("scale", [2, 4])
def test_matches_official_module(scale, monkeypatch):
    repo = official_dir("SRFBN_OFFICIAL_REPO", "SRFBN_CVPR19",
                        required=("networks/__init__.py", "networks/srfbn_arch.py", "networks/blocks.py"))
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *args, **kwargs: self)  # FeedbackBlock's `.cuda()`
    with official_imports(repo):  # `networks` is a generic name: gone from sys.modules afterwards
        from networks.srfbn_arch import SRFBN as OfficialSRFBN

    ours = SRFBN.create(scale, "official", seed=0)
    official = OfficialSRFBN(in_channels=3, out_channels=3, num_features=64, num_steps=4, num_groups=6,
                             upscale_factor=scale).eval()
    official.load_state_dict(ours.network.state_dict(), strict=True)
    lr = _astronaut(slice(100, 116), slice(180, 192))
    with torch.no_grad():
        expected = official(lr * 255)[-1] / 255
    assert (ours.upscale(lr) - expected.clamp(0, 1)).abs().max() <= 1e-4


if __name__ == "__main__":
    if sys.argv[1:] == ["--regen"]:
        make_regression_fixture()
        print(f"wrote {REGRESSION} ({REGRESSION.stat().st_size} bytes)")
    else:
        sys.exit("usage: python tests/test_sr_srfbn.py --regen")
