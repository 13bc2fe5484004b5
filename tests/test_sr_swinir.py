"""SwinIR (classical SR): official names and shapes, checkpoints, protocol, tiling, regression.

Parity with the official code (`test_parity_with_official_module` repeats it, smaller, on the official
files in ../shared/official/SwinIR, or a checkout named by $CFANET_SWINIR_OFFICIAL; see `official_code.py`):

- repository JingyunLiang/SwinIR, commit 6545850fbf8df298df73d81f3e8cba638787c8bd (2022-12-04),
  `models/network_swinir.py` (`SwinIR`) and the padding/crop of `main_test_swinir.py`
  (copied verbatim into the comparison script as `official_protocol`);
- patched to run on CPU without timm: a stand-in `timm/models/layers.py` next to `models/` with
  `trunc_normal_ = torch.nn.init.trunc_normal_`, `to_2tuple`, and an identity `DropPath`
  (stochastic depth is off in eval mode); nothing in the official files was edited, nothing calls
  `.cuda()` in the network itself;
- weights: the official module built as `define_model` builds it for `classical_sr` (img_size 64,
  window 8, depths 6x6, embed_dim 180, heads 6x6, mlp_ratio 2, pixelshuffle, 1conv), seeded with
  `torch.manual_seed(0)`, once with its own init and once with perturbed weights (linear weights
  + N(0, 1/fan_in), bias tables + N(0, 4), so attention is far from uniform); its `state_dict()`
  loaded strictly into ours;
- inputs: box-downsampled crops of `skimage.data.astronaut()` of 37x45, 56x56 (padded to 64 =
  img_size: the stored-mask path), 24x31, 3x5 (the network's own reflect padding), 8x16, 4x3;
  plus an "s48w8" file (official module with img_size 48, `attn_mask` [36, 64, 64], in a
  `params` container) loaded with `SwinIR.from_checkpoint`;
- command: a throwaway script (outside the repo) that builds both models and compares
  `official_protocol(official, x, scale)` with `SwinIR.forward_protocol(x)`; the optional test
  below does the same on smaller inputs: `git clone https://github.com/JingyunLiang/SwinIR`
  (checkout 6545850), then `CFANET_SWINIR_OFFICIAL=$PWD/SwinIR pytest tests/test_sr_swinir.py -k parity`
  (it always uses the timm stand-in, only while importing: real timm may import torchvision, which
  does not import with the project's CPU torch);
- result: max |difference| 0.0 (bit-identical outputs) for x2 and x4, every input and both weight
  sets, before and after clamping; 0.0 for the s48w8 file.

Tiling (max |tiled - untiled| of `upscale`, clamped [0, 1] outputs, x2, astronaut crops; "init" =
seeded random init, "perturbed" = the perturbed weights above; stitching crops at mid-overlap, so
a seam has overlap/2 input pixels of context on each side). Tiles must start on the window grid:
the base class's tiling of the unpadded image puts tile origins off the grid and plateaus whatever
the overlap (small, 100x92, tile 48, overlaps 8-32: 2.0e-2 init, 1.3e-1 perturbed). The adapter
tiles the padded image, tile and overlap rounded to multiples of 8:

| config, weights, input, tile | overlap 8 | 16 | 24 | 32 | 48 | 64 | 80 |
| --- | --- | --- | --- | --- | --- | --- | --- |
| small, init, 100x92, 48 | 2.0e-2 | 2.2e-4 | 2.6e-5 | 3.6e-7 | | | |
| small, perturbed, 100x92, 48 | 5.2e-2 | 1.7e-2 | 9.8e-3 | 1.4e-3 | | | |
| small, perturbed, 200x184, 96 | | | | 1.1e-3 | 2.7e-5 | 0 | 0 |
| official, init, 100x92, 48 | | 1.9e-3 | | 1.5e-5 | | | |
| official, perturbed, 100x92, 48 | | 2.4e-2 | | 2.6e-3 | | | |
| official, init, 140x124, 96 | | | | | 3.0e-7 | 3.0e-7 | |
| official, perturbed, 140x124, 96 | | | | | 1.5e-4 | 8.2e-6 | 4.8e-7 |

Hence the default overlap 64 (the official script uses 32). Random weights are only a proxy: the
released weights were not available here, so how far their influence reaches was not measured.

Regenerate the regression fixture (only after an intended change of the numbers):
`python tests/test_sr_swinir.py --regen`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.sr.swinir import OFFICIAL, SMALL, SwinIR, SwinIRNetwork, shifted_window_mask
from cfanet.checkpoint import CheckpointError, CheckpointMismatchError
from cfanet.ensemble import _inverse, _transform

from official_code import official_dir, official_imports, timm_stub

FIXTURES = Path(__file__).parent / "fixtures"
REGRESSION = FIXTURES / "sr_swinir_regression.npz"


def _pattern(height: int, width: int) -> torch.Tensor:
    """A fixed RGB (1, 3, H, W) test image in [0, 1]: smooth waves and hard edges, no RNG."""
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    red = 0.5 + 0.4 * torch.sin(0.7 * xx + 0.3 * yy)
    green = 0.5 + 0.4 * torch.cos(0.21 * xx * yy / (1 + xx))
    blue = ((xx + 2 * yy) % 7 >= 3).float() * 0.8 + 0.1
    return torch.stack([red, green, blue])[None]


def _astronaut(height: int, width: int) -> torch.Tensor:
    from skimage.data import astronaut
    crop = astronaut()[20:20 + height, 140:140 + width].astype(np.float32) / 255
    return torch.from_numpy(crop).permute(2, 0, 1)[None].contiguous()


# -- golden lists -----------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [2, 4])
def test_state_dict_matches_golden_list(scale):
    lines = (FIXTURES / "statedicts" / f"swinir_classical_x{scale}.txt").read_text().splitlines()
    header, expected = lines[0], lines[1:]
    network = SwinIR.build_network(scale, **OFFICIAL)
    ours = [f"{name} {list(tensor.shape)}" for name, tensor in network.state_dict().items()]
    assert ours == expected
    assert header == (f"# swinir_classical_x{scale}: {len(ours)} entries, "
                      f"{sum(p.numel() for p in network.parameters())} parameters")
    assert SwinIR.infer_scale(network.state_dict()) == scale


def test_stored_mask_is_the_computed_mask():
    network = SwinIRNetwork(upscale=2, **{**SMALL, "img_size": 24})
    block = network.layers[0].residual_group.blocks[1]
    assert block.shift_size == 4 and block.attn_mask.shape == (9, 64, 64)
    assert torch.equal(block.attn_mask, shifted_window_mask(24, 24, 8, 4))
    assert set(block.attn_mask.unique().tolist()) == {0.0, -100.0}


# -- checkpoints ------------------------------------------------------------------------------------

def _save_official_container(model: SwinIR, path: Path, key: str = "params") -> Path:
    torch.save({key: model.network.state_dict()}, path)
    return path


def test_checkpoint_round_trip_infers_scale(tmp_path):
    x = _pattern(13, 11)
    for scale in (2, 4):
        model = SwinIR.create(scale, "small", seed=3)
        path = _save_official_container(model, tmp_path / f"x{scale}.pth")
        loaded = SwinIR.from_checkpoint(path, size="small")
        assert loaded.scale == scale
        for name, tensor in model.network.state_dict().items():
            assert torch.equal(loaded.network.state_dict()[name], tensor), name
        assert torch.equal(loaded.upscale(x), model.upscale(x))
    ema = _save_official_container(SwinIR.create(2, "small", seed=4), tmp_path / "ema.pth", key="params_ema")
    assert SwinIR.from_checkpoint(ema, size="small").scale == 2


def test_checkpoint_of_other_scale_fails_clearly(tmp_path):
    path = _save_official_container(SwinIR.create(4, "small"), tmp_path / "x4.pth")
    with pytest.raises(CheckpointError, match="x4 SwinIR checkpoint, but x2 was asked"):
        SwinIR.from_checkpoint(path, scale=2, size="small")


def test_checkpoint_with_renamed_or_missing_key_names_it(tmp_path):
    weights = SwinIR.create(2, "small").network.state_dict()
    renamed = dict(weights)
    renamed["layers.1.conv.kernel"] = renamed.pop("layers.1.conv.weight")
    torch.save({"params": renamed}, tmp_path / "renamed.pth")
    with pytest.raises(CheckpointMismatchError, match="layers.1.conv.weight") as error:
        SwinIR.from_checkpoint(tmp_path / "renamed.pth", size="small")
    assert "layers.1.conv.kernel" in str(error.value)
    missing = {k: v for k, v in weights.items() if k != "layers.0.residual_group.blocks.0.attn.relative_position_index"}
    torch.save({"params": missing}, tmp_path / "missing.pth")
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \(1\): layers.0.residual_group.blocks.0.attn"):
        SwinIR.from_checkpoint(tmp_path / "missing.pth", size="small")


def test_checkpoint_trained_on_another_patch_size_loads(tmp_path):
    """The DIV2K s48w8 files store `attn_mask` for 48x48 (36 windows): ignored, recomputed, same output."""
    torch.manual_seed(5)
    s48 = SwinIRNetwork(upscale=2, **{**SMALL, "img_size": 48}).eval()
    assert s48.state_dict()["layers.0.residual_group.blocks.1.attn_mask"].shape == (36, 64, 64)
    torch.save({"params": s48.state_dict()}, tmp_path / "s48.pth")
    loaded = SwinIR.from_checkpoint(tmp_path / "s48.pth", size="small")
    with torch.no_grad():
        for size in ((45, 41), (60, 57)):  # padded to 48x48 (s48's stored mask) and 64x64 (ours)
            x = _pattern(*size)
            pad = lambda t: torch.cat([t, t.flip(-2)], -2)[..., :(t.shape[-2] // 8 + 1) * 8, :]  # noqa: E731
            padded = pad(pad(x).transpose(-2, -1)).transpose(-2, -1)
            expected = s48(padded)[..., :2 * size[0], :2 * size[1]]
            assert torch.equal(loaded.forward_protocol(x), expected)


# -- regression -------------------------------------------------------------------------------------

REGRESSION_CASES = {"x2": (2, (20, 17)), "x4": (4, (11, 13))}


def make_regression_fixture(path: Path = REGRESSION) -> None:
    """The small configuration, seed 0, on `_pattern` inputs: float32 outputs of `upscale`."""
    arrays = {}
    for label, (scale, size) in REGRESSION_CASES.items():
        x = _pattern(*size)
        arrays[f"{label}_input"] = x[0].numpy()
        arrays[f"{label}_output"] = SwinIR.create(scale, "small", seed=0).upscale(x)[0].numpy()
    arrays["torch_version"] = np.array(torch.__version__)
    np.savez_compressed(path, **arrays)


@pytest.mark.parametrize("label", list(REGRESSION_CASES))
def test_regression_small_seed0(label):
    scale, size = REGRESSION_CASES[label]
    stored = np.load(REGRESSION)
    x = _pattern(*size)
    np.testing.assert_array_equal(stored[f"{label}_input"], x[0].numpy())
    out = SwinIR.create(scale, "small", seed=0).upscale(x)[0].numpy()
    np.testing.assert_allclose(out, stored[f"{label}_output"], rtol=0, atol=1e-5)


# -- tiling and self-ensemble ---------------------------------------------------------------------

def test_tiled_equals_untiled_with_default_overlap():
    model = SwinIR.create(2, "small", seed=0)
    assert model.tile_overlap == SwinIR.DEFAULT_TILE_OVERLAP == 64
    x = _astronaut(130, 61)
    whole = model.upscale(x)
    # tile rounded down to 96 on the window grid: 3 tiles of the padded 136 x 64 image, at rows 0, 32
    # and 40; the seam between the first two has 32 pixels of context on each side
    model.tile = 100
    calls = []
    network_forward = model.network.forward

    def spy(t):
        calls.append(tuple(t.shape[-2:]))
        return network_forward(t)

    model.network.forward = spy
    tiled = model.upscale(x)
    assert calls == [(96, 64)] * 3
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max() < 1e-4


def test_tile_overlap_must_fit_the_tile():
    model = SwinIR.create(2, "small", tile=16, tile_overlap=12)  # overlap rounds up to 16 = tile
    with pytest.raises(ValueError, match="tile_overlap"):
        model.upscale(_pattern(40, 40))


def test_self_ensemble_is_the_mean_of_the_eight_transforms():
    model = SwinIR.create(2, "small", seed=0)
    x = _pattern(13, 10)
    ensemble = SwinIR.create(2, "small", seed=0, self_ensemble=True).upscale(x)
    assert ensemble.shape == (1, 3, 26, 20) and ensemble.dtype == torch.float32
    with torch.no_grad():
        runs = [_inverse(model.forward_protocol(_transform(x, k)), k) for k in range(8)]
    expected = torch.stack(runs).mean(0).clamp(0, 1)
    assert (ensemble - expected).abs().max() < 1e-6
    assert (ensemble - model.upscale(x)).abs().max() > 1e-4  # the transforms do change the result


# -- upscale contract -------------------------------------------------------------------------------

@pytest.mark.parametrize("scale, size", [(2, (13, 9)), (4, (16, 24)), (2, (8, 8)), (3, (3, 5)), (4, (7, 1 + 8))])
def test_upscale_contract(scale, size):
    x = _pattern(*size)
    out = SwinIR.create(scale, "small").upscale(x)
    assert out.shape == (1, 3, scale * size[0], scale * size[1]) and out.dtype == torch.float32
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    batch = SwinIR.create(scale, "small").upscale(torch.cat([x, x.flip(-1)]))
    assert torch.allclose(batch[:1], out, atol=1e-6)


def test_upscale_official_configuration_tiny_input():
    x = _pattern(8, 5)
    for scale in (2, 4):
        out = SwinIR.create(scale, "official").upscale(x)
        assert out.shape == (1, 3, 8 * scale, 5 * scale) and out.dtype == torch.float32


@pytest.mark.parametrize("bad", [torch.rand(3, 8, 8), torch.rand(1, 1, 8, 8), torch.randint(0, 255, (1, 3, 8, 8)),
                                 np.zeros((1, 3, 8, 8), np.float32), torch.rand(1, 3, 2, 9)])
def test_upscale_rejects_malformed_input(bad):
    with pytest.raises(ValueError):
        SwinIR.create(2, "small").upscale(bad)


# -- parity with the official module (skipped without the official files, fails in CI) -------------

def _official_module(root: Path):
    """`models.network_swinir.SwinIR` from a checkout of JingyunLiang/SwinIR, importing the three timm
    helpers it uses from a stand-in (`trunc_normal_`: torch's; `DropPath`: the identity, stochastic
    depth being off in eval mode); `models` and the stand-in are gone from `sys.modules` afterwards."""
    stub = timm_stub(trunc_normal_=torch.nn.init.trunc_normal_,
                     to_2tuple=lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v),
                     drop_path=lambda p=0.0: torch.nn.Identity())
    with official_imports(root, stubs=stub):
        from models.network_swinir import SwinIR as Official
    return Official


@pytest.mark.parametrize("scale", [2, 4])
def test_parity_with_official_module(scale):
    root = official_dir("CFANET_SWINIR_OFFICIAL", "SwinIR", required=("models/network_swinir.py",))
    Official = _official_module(root)
    for size, config, perturbed in (("small", SMALL, False), ("small", SMALL, True), ("official", OFFICIAL, True)):
        torch.manual_seed(0)
        official = Official(upscale=scale, in_chans=3, img_size=config["img_size"], window_size=8, img_range=1.0,
                            depths=list(config["depths"]), embed_dim=config["embed_dim"],
                            num_heads=list(config["num_heads"]), mlp_ratio=2, upsampler="pixelshuffle",
                            resi_connection="1conv").eval()
        if perturbed:  # attention far from uniform: linear weights + N(0, 1/fan_in), bias tables + N(0, 4)
            with torch.no_grad():
                for name, p in official.named_parameters():
                    if "relative_position_bias_table" in name:
                        p.add_(2.0 * torch.randn_like(p))
                    elif p.dim() == 2:
                        p.add_(torch.randn_like(p) / p.shape[1] ** 0.5)
        ours = SwinIR.create(scale, size, seed=None)
        ours.network.load_state_dict(official.state_dict(), strict=True)
        for shape in ((13, 11), (3, 5)) if size == "official" else ((13, 11), (56, 60), (3, 5)):
            x = _pattern(*shape)
            with torch.no_grad():  # main_test_swinir.py: pad strictly above a multiple of 8, run, crop
                h, w = shape
                padded = torch.cat([x, torch.flip(x, [2])], 2)[:, :, :(h // 8 + 1) * 8, :]
                padded = torch.cat([padded, torch.flip(padded, [3])], 3)[:, :, :, :(w // 8 + 1) * 8]
                expected = official(padded)[..., :h * scale, :w * scale]
                assert (ours.forward_protocol(x) - expected).abs().max() <= 1e-4, (size, perturbed, shape)

if __name__ == "__main__":
    if "--regen" in sys.argv:
        make_regression_fixture()
        print(f"wrote {REGRESSION} ({REGRESSION.stat().st_size} bytes)")
    else:
        print(__doc__)
