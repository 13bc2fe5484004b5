"""D-DBPN (baselines/sr/dbpn.py): official names and shapes, checkpoints, regression, tiling, protocol.

Parity with the official code (`test_parity_with_official_code`, on the official files in
../shared/official/DBPN-Pytorch or $DBPN_OFFICIAL_REPO; see `official_code.py`):

- repository alterzero/DBPN-Pytorch, commit 6eb48caaa1aa6f4897d5c902a4b4f15ff3ac2da7 (2020-04-10):
  `dbpn.py` (`Net`), `base_networks.py` (used unchanged) and `eval.py` (`x8_forward`).
- patches, for the CPU and without torchvision: the line `from torchvision.transforms import *`
  is dropped from `dbpn.py` (`Net` does not use it); `x8_forward` is cut out of `eval.py` and
  used verbatim except that `.cuda()` is removed (`eval.py` cannot be imported: it parses
  arguments and needs torchvision, `scipy.misc.imsave` and a GPU at import time).
- weights: `DBPN.create(scale, "official", seed=0)` saved as a DataParallel file (`module.`
  prefix); loaded into `DataParallel(Net(3, 64, 256, 7, scale))` with `load_state_dict` as
  `eval.py` does, and into ours with `DBPN.from_checkpoint` (scale inferred).
- input: a uint8 astronaut crop divided by 255 (= `ToTensor`); official output `model(input)`
  (eval.py's default: no `--residual`), clamped to [0, 1] as its `save_img` does; and
  `x8_forward(input, model)` against our `self_ensemble=True`.
- command (outside the repo; the mirror lacks the released .pth blobs, so take the files one by one):
  `for f in dbpn.py base_networks.py eval.py; do git --git-dir=<mirror> show 6eb48ca:$f > /tmp/dbpn_official/$f; done`
  `DBPN_OFFICIAL_REPO=/tmp/dbpn_official pytest -q tests/test_sr_dbpn.py -k parity` (by default the
  test takes ../shared/official/DBPN-Pytorch, the same files exported unchanged)
- result: max abs difference 0.0 (bit-identical) at x2 and x4, for `model(input)`, for the
  clamped output and for `x8_forward`, on this test's 13x11 crop and, run once by hand with the
  same code, on `astronaut()[::2, ::2][40:77, 70:111]` (37x41; 8-bit outputs identical too).

Regression fixture `tests/fixtures/sr_dbpn_regression.npz`: the small configuration with seed 0,
x2 and x4, on a fixed astronaut crop (stored too); outputs before clamping. Regenerate (only when
the network is meant to change) with `python tests/test_sr_dbpn.py --regen`.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.sr.dbpn import DBPN
from cfanet.checkpoint import CheckpointError, CheckpointMismatchError
from cfanet.tiling import tiled_apply

from official_code import official_dir, official_imports

FIXTURES = Path(__file__).parent / "fixtures"
REGRESSION = FIXTURES / "sr_dbpn_regression.npz"


def astronaut_crop(top: int, left: int, height: int, width: int, step: int = 2) -> np.ndarray:
    """A uint8 RGB crop of skimage's astronaut, subsampled by `step` first (a real-ish LR image)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[::step, ::step][top:top + height, left:left + width])


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (1, 3, H, W) in [0, 1], as torchvision's ToTensor."""
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div(255)[None].contiguous()


# -- names, shapes, parameter counts ---------------------------------------------------------------

@pytest.mark.parametrize("scale", [2, 4])
def test_state_dict_matches_golden_list(scale):
    lines = (FIXTURES / "statedicts" / f"dbpn_x{scale}.txt").read_text().splitlines()
    header, golden = lines[0], [line for line in lines[1:] if line.strip()]
    network = DBPN.build_network(scale, **DBPN.configs["official"])
    ours = [f"{name} {list(tensor.shape)}" for name, tensor in network.state_dict().items()]
    assert ours == golden
    count = sum(p.numel() for p in network.parameters())
    assert header == f"# dbpn_x{scale}: {len(golden)} entries, {count} parameters"


def test_small_configuration_is_smaller_and_same_code_path():
    small = DBPN.create(2, "small")
    assert small.num_parameters == 142_278 and DBPN.create(4, "small").num_parameters == 249_798
    names = set(small.network.state_dict())
    assert {"up1.up_conv1.deconv.weight", "down2.conv.conv.weight", "up3.conv.conv.weight"} <= names


# -- checkpoints ------------------------------------------------------------------------------------

def save_data_parallel(model: DBPN, path: Path) -> None:
    """The official container: a plain state dict saved from a DataParallel wrapper."""
    torch.save({f"module.{k}": v for k, v in model.network.state_dict().items()}, path)


@pytest.mark.parametrize("scale, size", [(2, "official"), (4, "official"), (8, "small")])
def test_checkpoint_round_trip_infers_scale(tmp_path, scale, size):
    model = DBPN.create(scale, size, seed=3)
    path = tmp_path / f"DBPN_x{scale}.pth"
    save_data_parallel(model, path)
    loaded = DBPN.from_checkpoint(path, size=size)
    assert loaded.scale == scale and loaded.weights == str(path)
    theirs = loaded.network.state_dict()
    assert all(torch.equal(theirs[name], tensor) for name, tensor in model.network.state_dict().items())


def test_x4_file_asked_as_x2_fails_clearly(tmp_path):
    path = tmp_path / "DBPN_x4.pth"
    save_data_parallel(DBPN.create(4, "small"), path)
    with pytest.raises(CheckpointError, match="x4 DBPN checkpoint, but x2 was asked for"):
        DBPN.from_checkpoint(path, scale=2, size="small")


def test_renamed_or_missing_key_is_named(tmp_path):
    weights = {f"module.{k}": v for k, v in DBPN.create(2, "small").network.state_dict().items()}
    renamed = dict(weights)
    renamed["module.down2.squeeze.conv.weight"] = renamed.pop("module.down2.conv.conv.weight")
    torch.save(renamed, tmp_path / "renamed.pth")
    with pytest.raises(CheckpointMismatchError) as info:
        DBPN.from_checkpoint(tmp_path / "renamed.pth", size="small")
    assert info.value.missing == ["down2.conv.conv.weight"]
    assert info.value.unexpected == ["down2.squeeze.conv.weight"]
    assert "down2.conv.conv.weight" in str(info.value)

    missing = dict(weights)
    del missing["module.output_conv.conv.bias"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \(1\): output_conv\.conv\.bias"):
        DBPN.from_checkpoint(tmp_path / "missing.pth", size="small")


def test_scale_cannot_be_told_without_the_projection_weights(tmp_path):
    weights = DBPN.create(2, "small").network.state_dict()
    del weights["up1.up_conv1.deconv.weight"]
    torch.save(weights, tmp_path / "no_up1.pth")
    with pytest.raises(CheckpointError, match="cannot tell the scale"):
        DBPN.from_checkpoint(tmp_path / "no_up1.pth", size="small")


# -- seeded regression ------------------------------------------------------------------------------

def regression_input() -> np.ndarray:
    return astronaut_crop(44, 84, 15, 13)  # 15x13: odd sizes, the face


def regression_outputs(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """Small configuration, seed 0: raw outputs (before clamping) at x2 and x4, float32 (3, sH, sW)."""
    out = {}
    for scale in (2, 4):
        model = DBPN.create(scale, "small", seed=0)
        with torch.no_grad():
            out[f"x{scale}"] = model.forward_protocol(to_tensor(rgb))[0].numpy()
    return out


def regenerate_regression_fixture() -> None:
    rgb = regression_input()
    np.savez_compressed(REGRESSION, input=rgb, **regression_outputs(rgb))
    print(f"wrote {REGRESSION} ({REGRESSION.stat().st_size} bytes)")


def test_seeded_regression():
    stored = np.load(REGRESSION)
    rgb = regression_input()
    np.testing.assert_array_equal(rgb, stored["input"])  # the input itself did not move
    for key, value in regression_outputs(rgb).items():
        assert value.shape == stored[key].shape
        np.testing.assert_allclose(value, stored[key], rtol=0, atol=1e-5, err_msg=key)


# -- tiling and self-ensemble -----------------------------------------------------------------------

def test_tiled_equals_untiled_with_the_default_overlap():
    """Official x2 configuration (the scale whose influence reaches farthest) on a 40x40 crop, tiles
    of 36 with the default overlap 32: the seams have 16 LR pixels of context on either side.

    Measured once (seeded official weights, seed 0; a 48x144 crop of the half-size astronaut at
    rows 40-88, columns 40-184; tile 48, so the seams are vertical), max abs difference tiled vs
    untiled after clamping to [0, 1]:
    x2: overlap 8: 3.6e-1, 16: 2.9e-2, 24: 1.7e-3, 32: 3.4e-5, 40: 4.5e-6;
    x4: overlap 8: 3.4e-3, 16: 1.9e-6, 24, 32 and 40: 9.8e-7 (summation-order noise).
    Trained weights may reach farther than seeded ones; the official chop_forward keeps 8.
    """
    model = DBPN.create(2, "official", seed=0)
    assert model.tile_overlap == DBPN.default_tile_overlap == 32
    x = to_tensor(astronaut_crop(40, 70, 40, 40))
    untiled = model.upscale(x)
    model.tile = 36
    tiled = model.upscale(x)
    assert (tiled - untiled).abs().max().item() < 1e-4


def test_tiled_equals_untiled_small_x4_odd_sizes():
    model = DBPN.create(4, "small", seed=0, tile=36)
    x = to_tensor(astronaut_crop(30, 60, 41, 39))
    tiled = model.upscale(x)
    with torch.no_grad():
        untiled = model.forward_protocol(x)
        raw_tiled = tiled_apply(model.forward_protocol, x, 4, 36, model.tile_overlap)
    assert (raw_tiled - untiled).abs().max().item() < 1e-4  # before clamping too
    assert (tiled - untiled.clamp(0, 1)).abs().max().item() < 1e-4


def test_self_ensemble_is_the_mean_of_the_eight_transforms():
    model = DBPN.create(2, "small", seed=0, self_ensemble=True)
    x = to_tensor(astronaut_crop(44, 84, 11, 14))
    out = model.upscale(x)
    assert out.shape == (1, 3, 22, 28) and out.dtype == torch.float32
    runs = []
    with torch.no_grad():
        for transpose in (False, True):
            for flip_h in (False, True):
                for flip_v in (False, True):
                    t = x.transpose(-2, -1) if transpose else x
                    t = t.flip(-1) if flip_h else t
                    t = t.flip(-2) if flip_v else t
                    y = model.forward_protocol(t)
                    y = y.flip(-2) if flip_v else y
                    y = y.flip(-1) if flip_h else y
                    runs.append(y.transpose(-2, -1) if transpose else y)
    expected = torch.stack(runs).mean(0).clamp(0, 1)
    assert (out - expected).abs().max().item() < 1e-6
    model.use_self_ensemble = False
    assert (out - model.upscale(x)).abs().max().item() > 1e-3  # a random network is not equivariant


# -- the upscale contract ---------------------------------------------------------------------------

@pytest.mark.parametrize("scale, size", [(2, (7, 9)), (4, (5, 8)), (2, (1, 1))])
def test_upscale_contract(scale, size):
    model = DBPN.create(scale, "small")
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1))
    y = model.upscale(x)
    assert y.shape == (2, 3, scale * size[0], scale * size[1]) and y.dtype == torch.float32
    assert y.min() >= 0 and y.max() <= 1
    assert torch.equal(model.upscale(x.double()), y)  # the boundary converts to float32


@pytest.mark.parametrize("bad", [torch.rand(3, 8, 8), torch.rand(1, 4, 8, 8), torch.rand(1, 1, 8, 8),
                                 torch.zeros(1, 3, 8, 8, dtype=torch.uint8), np.zeros((1, 3, 8, 8), np.float32)])
def test_malformed_input_raises(bad):
    with pytest.raises(ValueError, match="DBPN"):
        DBPN.create(2, "small").upscale(bad)


def test_unknown_scale_and_configuration_raise():
    with pytest.raises(ValueError, match="scales"):
        DBPN.create(3, "small")
    with pytest.raises(ValueError, match="unknown configuration"):
        DBPN.create(2, "large")


# -- parity with the official code (skipped without the official files, fails in CI) ---------------

def load_official_net(repo: Path):
    """The official `Net` from a checkout, with the torchvision import dropped (see the docstring);
    `base_networks` (a generic name) is imported from `repo` and dropped from `sys.modules` after."""
    source = (repo / "dbpn.py").read_text().replace("from torchvision.transforms import *", "")
    with official_imports(repo):  # `from base_networks import *`
        module = types.ModuleType("dbpn_official")
        exec(compile(source, str(repo / "dbpn.py"), "exec"), module.__dict__)
    return module.Net


def official_x8_forward(repo: Path):
    """eval.py's `x8_forward`, cut out of the file, with `.cuda()` removed."""
    import ast
    from functools import reduce

    source = (repo / "eval.py").read_text()
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "x8_forward")
    namespace = {"torch": torch, "Variable": torch.autograd.Variable, "reduce": reduce}
    exec(ast.get_source_segment(source, node).replace(".cuda()", ""), namespace)
    return namespace["x8_forward"]


@pytest.mark.parametrize("scale", [2, 4])
def test_parity_with_official_code(tmp_path, scale):
    repo = official_dir("DBPN_OFFICIAL_REPO", "DBPN-Pytorch", required=("dbpn.py", "base_networks.py", "eval.py"))
    official_net = load_official_net(repo)
    ours = DBPN.create(scale, "official", seed=0)
    path = tmp_path / f"DBPN_x{scale}.pth"
    save_data_parallel(ours, path)
    net = torch.nn.DataParallel(official_net(num_channels=3, base_filter=64, feat=256, num_stages=7,
                                             scale_factor=scale))
    net.load_state_dict(torch.load(path, map_location="cpu"))
    net.eval()
    loaded = DBPN.from_checkpoint(path)
    x = to_tensor(astronaut_crop(40, 70, 13, 11))
    with torch.no_grad():
        reference = net(x)
        assert (loaded.forward_protocol(x) - reference).abs().max().item() <= 1e-4
        assert (loaded.upscale(x) - reference.clamp(0, 1)).abs().max().item() <= 1e-4
        reference_x8 = official_x8_forward(repo)(x, net)
    loaded.use_self_ensemble = True
    assert (loaded.upscale(x) - reference_x8.clamp(0, 1)).abs().max().item() <= 1e-4


if __name__ == "__main__":
    if "--regen" in sys.argv:
        regenerate_regression_fixture()
    else:
        print(__doc__)
