"""RCAN (baselines/sr/rcan.py): official state-dict layout, checkpoints, regression, tiling, protocol.

Parity with the official code (not a test that runs by default; figures from the last run below).
Repository yulunzhang/RCAN, commit f722e5d0e1eff45148bfaefd9bc85c6f0f26ce02, directory
`RCAN_TestCode/code`: `model/rcan.py` and `model/common.py` (the network), `model/__init__.py`
(`Model`: `forward_chop`, `forward_x8`), `utility.quantize`, `data/common.np2Tensor`. Unpatched,
run on the CPU through `Model(args)` with `args.cpu = True`, `n_GPUs = 1`, `precision = 'single'`,
`pre_train = '.'` (no file loaded) and the release script's options (10 groups x 20 blocks, 64
features, reduction 16, rgb_range 255, DIV2K mean); `data/common.py` imports skimage and
torchvision, so only its `np2Tensor` function was taken (extracted from the source and executed).
Weights: `RCAN.create(scale, "official", seed=0)`'s state dict loaded into the official module
with `nn.Module.load_state_dict(strict=True)`. Input: a 64x64 RGB uint8 crop of
`mefb/House/fused_MGFF.png` (rows 100-163, columns 200-263) through `np2Tensor(.., 255)`; ours gets
the same values / 255. Command: `python /tmp/rcan_official/parity.py` with the official code
extracted under /tmp/rcan_official (`git archive HEAD RCAN_TestCode/code`). Results, max abs
difference on the [0, 1] scale between `official(x) / 255` and `forward_protocol(x / 255)`:
x2 0.0, x4 0.0 (bit-identical, unclamped; official outputs span [-159, 224] and [-74, 307]);
with `--chop` against `chop=True`: 0.0 and 0.0; with `--self_ensemble` against
`self_ensemble=True` (clamped): 1.2e-7 and 1.2e-7; our feature tiling (tiles of 16 and 24) against
the official untiled output: 1.4e-6 (x2) and 7.7e-7 (x4). After quantisation (official
`utility.quantize` against the harness's `cfanet.images.quantize`), 0 of 49,152 (x2) and 1 of
196,608 (x4) values differ by one level: an exact tie (100.5), which `torch.round` in the official
`quantize` rounds to even (100) and the harness rounds half up (101).

`test_matches_official_code` repeats a small version of this on the official
`RCAN_TestCode/code` directory, ../shared/official/RCAN/RCAN_TestCode/code by default or
$RCAN_OFFICIAL_CODE (a checkout's `RCAN_TestCode/code`); see `official_code.py`.

The regression fixture `fixtures/sr_rcan_regression.npz` holds the outputs of the seeded (seed 0)
small x2/x4 models on a 16x12 scene and of the official x2/x4 models on an 8x8 scene; regenerate
it (only after a deliberate change of the numbers) with `python tests/test_sr_rcan.py --regen`.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from baselines.sr.chop import chop_forward
from baselines.sr.rcan import CHOP_MIN_SIZE, CHOP_SHAVE, RCAN, RCANNet, apply_in_tiles
from cfanet.checkpoint import CheckpointError, CheckpointMismatchError
from cfanet.images import quantize_tensor
from cfanet.tiling import tiled_apply

from official_code import official_dir, official_imports

FIXTURES = Path(__file__).parent / "fixtures"
REGRESSION = FIXTURES / "sr_rcan_regression.npz"
# (configuration, scale, input height, input width) of each regression case.
REGRESSION_CASES = [("small", 2, 16, 12), ("small", 4, 16, 12), ("official", 2, 8, 8), ("official", 4, 8, 8)]


def scene(height: int, width: int, batch: int = 1) -> torch.Tensor:
    """A deterministic natural-looking RGB image in [0, 1]: shaded background, smooth texture,
    a disc and a bar with sharp edges (no random numbers, so the same on every platform)."""
    y = torch.linspace(0, 1, height).view(height, 1)
    x = torch.linspace(0, 1, width).view(1, width)
    texture = 0.08 * torch.sin(23 * x + 7 * y) * torch.cos(17 * y - 5 * x)
    disc = (((x - 0.6) ** 2 + (y - 0.4) ** 2) < 0.06).float()
    bar = ((x > 0.15) & (x < 0.3)).float() * (y > 0.5).float()
    channels = [0.25 + 0.5 * y + texture + 0.3 * disc - 0.2 * bar,
                0.55 - 0.3 * x + texture - 0.25 * disc + 0.3 * bar,
                0.35 + 0.3 * x * y - texture + 0.1 * disc + 0.1 * bar]
    image = torch.stack(channels).clamp(0, 1).unsqueeze(0)
    return image.repeat(batch, 1, 1, 1) if batch > 1 else image


def read_golden(name: str) -> tuple[list[tuple[str, list[int]]], int, int]:
    """A golden list: (entries as (name, shape), entry count, parameter count from the header)."""
    lines = (FIXTURES / "statedicts" / f"{name}.txt").read_text().splitlines()
    header = lines[0]  # "# rcan_x2: 1632 entries, 15444667 parameters"
    count, params = (int(part.split()[0]) for part in header.split(":")[1].split(","))
    entries = []
    for line in lines[1:]:
        key, shape = line.split(" ", 1)
        entries.append((key, [int(v) for v in shape.strip("[]").split(",") if v.strip()]))
    return entries, count, params


@pytest.fixture(scope="module")
def official():
    """The seeded official x2 and x4 models (built once: 15 M parameters each)."""
    return {scale: RCAN.create(scale, "official", seed=0) for scale in (2, 4)}


# -- state-dict layout ------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [2, 4])
def test_state_dict_matches_golden_list(official, scale):
    entries, count, params = read_golden(f"rcan_x{scale}")
    ours = [(k, list(v.shape)) for k, v in official[scale].network.state_dict().items()]
    assert ours == entries  # names, shapes and order
    assert len(ours) == count
    assert sum(v.numel() for v in official[scale].network.state_dict().values()) == params
    assert official[scale].num_parameters == params


def test_small_configuration_is_small():
    for scale in (2, 4):
        assert RCAN.create(scale, "small").num_parameters < 200_000
    assert set(RCAN.configs["small"]) == set(RCAN.configs["official"])  # same code path, other sizes


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_infer_scale_from_upsampler(scale):
    weights = RCANNet(scale, n_resgroups=1, n_resblocks=1, n_feats=16).state_dict()
    assert RCAN.infer_scale(weights) == scale
    assert RCAN.infer_scale({k: v for k, v in weights.items() if not k.startswith("tail.")}) is None


def test_mean_shift_is_the_div2k_mean(official):
    state = official[2].network.state_dict()
    mean = 255 * torch.tensor([0.4488, 0.4371, 0.4040])
    assert torch.equal(state["sub_mean.weight"].flatten(1), torch.eye(3))
    assert torch.allclose(state["sub_mean.bias"], -mean) and torch.allclose(state["add_mean.bias"], mean)
    assert not any(p.requires_grad for p in official[2].network.sub_mean.parameters())


# -- checkpoints ------------------------------------------------------------------------------------

def test_official_file_round_trip(tmp_path, official):
    """The released files are plain state dicts (`torch.save(model.state_dict())`)."""
    source = official[4]
    torch.save(source.network.state_dict(), tmp_path / "RCAN_BIX4.pt")
    loaded = RCAN.from_checkpoint(tmp_path / "RCAN_BIX4.pt")
    assert loaded.scale == 4
    got = loaded.network.state_dict()
    for key, value in source.network.state_dict().items():
        assert torch.equal(got[key], value), key


@pytest.mark.parametrize("scale", [2, 4])
def test_small_round_trip_gives_the_same_output(tmp_path, scale):
    source = RCAN.create(scale, "small", seed=3)
    torch.save(source.network.state_dict(), tmp_path / "w.pt")
    loaded = RCAN.from_checkpoint(tmp_path / "w.pt", size="small")
    assert loaded.scale == scale
    x = scene(9, 11)
    assert torch.equal(loaded.upscale(x), source.upscale(x))


def test_x4_file_asked_as_x2_fails(tmp_path):
    torch.save(RCAN.create(4, "small").network.state_dict(), tmp_path / "x4.pt")
    with pytest.raises(CheckpointError, match="x4 RCAN checkpoint, but x2 was asked"):
        RCAN.from_checkpoint(tmp_path / "x4.pt", scale=2, size="small")


def test_renamed_and_missing_keys_are_named(tmp_path):
    weights = RCAN.create(2, "small").network.state_dict()
    renamed = dict(weights)
    renamed["body.0.body.1.body.3.conv_du.0.kernel"] = renamed.pop("body.0.body.1.body.3.conv_du.0.weight")
    torch.save(renamed, tmp_path / "renamed.pt")
    with pytest.raises(CheckpointMismatchError) as error:
        RCAN.from_checkpoint(tmp_path / "renamed.pt", size="small")
    assert "body.0.body.1.body.3.conv_du.0.weight" in str(error.value)
    assert "body.0.body.1.body.3.conv_du.0.kernel" in str(error.value)
    missing = {k: v for k, v in weights.items() if k != "add_mean.bias"}
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(CheckpointMismatchError, match="add_mean.bias"):
        RCAN.from_checkpoint(tmp_path / "missing.pt", size="small")


# -- regression -------------------------------------------------------------------------------------

def regression_outputs(official: dict[int, RCAN] | None = None) -> dict[str, np.ndarray]:
    """The regression cases' outputs (float32 arrays, keyed `<config>_x<scale>`); `official`: the
    seed-0 official models by scale, if already built."""
    outputs = {}
    for size, scale, height, width in REGRESSION_CASES:
        model = official[scale] if official and size == "official" else RCAN.create(scale, size, seed=0)
        outputs[f"{size}_x{scale}"] = model.upscale(scene(height, width)).numpy()
    return outputs


def test_regression_fixture(official):
    expected = np.load(REGRESSION)
    got = regression_outputs(official)
    assert sorted(expected.files) == sorted(got)
    for key, value in got.items():
        assert value.shape == expected[key].shape, key
        assert np.abs(value - expected[key]).max() <= 1e-5, key


# -- tiling -----------------------------------------------------------------------------------------

def test_apply_in_tiles_is_exact_for_local_stacks():
    torch.manual_seed(0)
    stack = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1),
                          nn.PixelShuffle(2), nn.Conv2d(3, 3, 5, padding=2)).double()
    x = torch.rand(2, 3, 23, 17, dtype=torch.float64)
    with torch.no_grad():
        for tile in (4, 7, 16):
            assert (apply_in_tiles(stack, x, tile, halo=4, scale=2) - stack(x)).abs().max() < 1e-12


@pytest.mark.parametrize("scale", [2, 4])
def test_feature_tiling_equals_untiled(scale):
    """Tiles of 16 on a 45x38 image (partial tiles at the right and bottom)."""
    x = scene(45, 38)
    whole = RCAN.create(scale, "small", seed=0, tile=-1)
    tiled = RCAN(whole.network, scale, tile=16)
    difference = (tiled.upscale(x) - whole.upscale(x)).abs().max().item()
    assert difference < 1e-4  # measured: about 2e-7
    ensemble = RCAN(whole.network, scale, tile=10, self_ensemble=True)
    reference = RCAN(whole.network, scale, tile=-1, self_ensemble=True)
    assert (ensemble.upscale(x[..., :17, :14]) - reference.upscale(x[..., :17, :14])).abs().max() < 1e-4


def test_image_tiling_cannot_reproduce_channel_attention():
    """Why the adapter tiles features: with the shared image tiling each tile pools its own channel
    statistics, and no overlap fixes it (measured on a 96x96 crop of a real photograph, small
    model: 8e-3, 2.7e-3, 2.5e-3 for overlaps 8, 16, 32; official model: 0.18, 0.12, 0.12)."""
    x = scene(40, 40)
    model = RCAN.create(2, "small", seed=0)
    with torch.no_grad():
        whole = model.forward_protocol(x)
        for overlap in (12, 20):
            assert (tiled_apply(model.forward_protocol, x, 2, 28, overlap) - whole).abs().max() > 1e-4


# -- protocol ---------------------------------------------------------------------------------------

def _transform(x: torch.Tensor, k: int) -> torch.Tensor:
    x = x.flip(-1) if k & 1 else x
    x = x.flip(-2) if k & 2 else x
    return x.transpose(-2, -1) if k & 4 else x


def _inverse(x: torch.Tensor, k: int) -> torch.Tensor:
    x = x.transpose(-2, -1) if k & 4 else x
    x = x.flip(-2) if k & 2 else x
    return x.flip(-1) if k & 1 else x


def test_self_ensemble_is_the_mean_of_eight_transforms():
    x = scene(13, 10)
    model = RCAN.create(2, "small", seed=0, self_ensemble=True)
    out = model.upscale(x)
    assert out.shape == (1, 3, 26, 20)
    with torch.no_grad():
        runs = [_inverse(model.forward_protocol(_transform(x, k)), k) for k in range(8)]
    assert (out - torch.stack(runs).mean(0).clamp(0, 1)).abs().max() < 1e-6


@pytest.mark.parametrize("scale, size", [(2, (7, 5)), (4, (9, 6)), (2, (1, 1))])
def test_upscale_contract(scale, size):
    model = RCAN.create(scale, "small", seed=0)
    x = scene(*size, batch=2)
    out = model.upscale(x)
    assert out.dtype == torch.float32 and out.shape == (2, 3, scale * size[0], scale * size[1])
    assert out.min() >= 0 and out.max() <= 1
    assert torch.allclose(model.upscale(x.double()), out)  # other float dtypes are accepted


@pytest.mark.parametrize("bad", [torch.rand(3, 8, 8), torch.rand(1, 4, 8, 8), torch.rand(1, 1, 8, 8),
                                 torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8), np.zeros((1, 3, 8, 8))])
def test_malformed_input_raises(bad):
    with pytest.raises(ValueError, match="RCAN"):
        RCAN.create(2, "small").upscale(bad)


def test_protocol_is_the_network_on_the_255_scale():
    model = RCAN.create(2, "small", seed=0)
    x = scene(6, 7)
    with torch.no_grad():
        assert torch.equal(model.forward_protocol(x), model.network(x * 255) / 255)


def test_chop_matches_official_geometry():
    """`chop_forward` on a local function is the function itself (the seams fall inside the
    overlap); quarters are chopped again until they are small, and small inputs run whole."""
    calls = []

    def upsample(t):
        calls.append(tuple(t.shape[-2:]))
        return t.repeat_interleave(3, -2).repeat_interleave(3, -1) * 2

    x = torch.rand(1, 3, 45, 38)
    assert torch.equal(chop_forward(upsample, x, 3, CHOP_SHAVE, CHOP_MIN_SIZE), upsample(x))
    assert calls[:4] == [(32, 29)] * 4
    calls.clear()
    assert torch.equal(chop_forward(upsample, x, 3, CHOP_SHAVE, 700), upsample(x))  # 32x29 chopped, 26x24 not
    assert len(calls) == 4 * 4 + 1
    calls.clear()
    assert torch.equal(chop_forward(upsample, x, 3, CHOP_SHAVE, CHOP_MIN_SIZE, group=2), upsample(x))
    assert calls[:2] == [(32, 29)] * 2   # SRFBN's pairs: two calls of two quarters each (then the whole)
    calls.clear()
    chop_forward(upsample, torch.rand(1, 3, 15, 40), 3, CHOP_SHAVE, CHOP_MIN_SIZE)
    assert calls == [(15, 40)]


def test_chop_changes_the_result_only_through_channel_attention():
    x = scene(40, 44)
    plain = RCAN.create(2, "small", seed=0)
    with torch.no_grad():
        whole = plain.network(x * 255)
        chopped = chop_forward(plain.network, x * 255, 2, CHOP_SHAVE, CHOP_MIN_SIZE)
    difference = ((chopped - whole).abs() / 255).max().item()
    assert 1e-4 < difference < 0.05
    # the official protocol is the release script's --chop, then `utility.quantize` (half to even)
    official = RCAN(plain.network, 2, protocol="official").upscale(x)
    assert torch.equal(torch.round(official * 255), torch.round(chopped.clamp(0, 255)))


def test_bf16_autocast_runs_close_to_fp32():
    x = scene(12, 10)
    fp32 = RCAN.create(2, "small", seed=0)
    bf16 = RCAN(fp32.network, 2, precision="bf16")
    out = bf16.upscale(x)
    assert out.dtype == torch.float32
    assert (out - fp32.upscale(x)).abs().mean() < 2e-3


# -- official code (skipped without the official files, fails in CI) --------------------------------

@pytest.fixture
def official_code():
    """The official `RCAN_TestCode/code` directory (../shared/official/RCAN/RCAN_TestCode/code or
    $RCAN_OFFICIAL_CODE), importable for the whole test: `Model` imports `model.rcan` when built. Its
    top-level `model` and `utility` modules are removed from `sys.modules` afterwards."""
    root = official_dir("RCAN_OFFICIAL_CODE", "RCAN/RCAN_TestCode/code",
                        required=("model/__init__.py", "model/rcan.py", "model/common.py", "utility.py"))
    with official_imports(root):
        yield types.SimpleNamespace(model=importlib.import_module("model"), utility=importlib.import_module("utility"))


def test_matches_official_code(official_code):
    """The official `Model` (with and without `--chop`) and ours, same weights (small configuration):
    without chop against our exact protocol in float; with chop, quantised by `utility.quantize`,
    against our official protocol bit for bit."""
    x = scene(24, 22)
    for scale in (2, 4):
        ours = RCAN.create(scale, "small", seed=0)
        for chop in (False, True):
            args = types.SimpleNamespace(
                model="RCAN", scale=[scale], self_ensemble=False, chop=chop, precision="single", cpu=True,
                n_GPUs=1, save_models=False, pre_train=".", resume=0, print_model=False, rgb_range=255,
                n_colors=3, res_scale=1, data_train="DIV2K", **RCAN.configs["small"])
            reference = official_code.model.Model(args, types.SimpleNamespace(dir=".")).eval()
            nn.Module.load_state_dict(reference.model, ours.network.state_dict(), strict=True)
            with torch.no_grad():
                expected = reference(x * 255, 0)
            levels = official_code.utility.quantize(expected, 255)
            if chop:
                got = RCAN(ours.network, scale, protocol="official").upscale(x)
                assert torch.equal(torch.round(got * 255), levels)
                continue
            with torch.no_grad():
                got = ours.forward_protocol(x)
            assert (got - expected / 255).abs().max() <= 1e-4
            assert (levels / 255 - quantize_tensor(got.clamp(0, 1))).abs().max() <= 1 / 255 + 1e-6

if __name__ == "__main__":
    if sys.argv[1:] != ["--regen"]:
        sys.exit("usage: python tests/test_sr_rcan.py --regen   (rewrites " + str(REGRESSION) + ")")
    np.savez_compressed(REGRESSION, **regression_outputs())
    print(f"wrote {REGRESSION} ({REGRESSION.stat().st_size} bytes)")
