"""The SR adapters' `protocol="official"` (issue 18) against the release scripts' own code, bit for bit.

Under `protocol="official"` an adapter must reproduce its method's release script and return the
script's 8-bit levels divided by 255 (float32), so `torch.round(out * 255)` is the script's uint8.
Each oracle below runs the authors' code (from ../shared/official, see `official_code.py`; skipped
without it, failing under CI), calling it rather than copying it:

- RCAN (`RCAN_TestCode/code`, `TestRCAN_scripts.sh` passes `--chop`): `model.Model(args)` with
  `chop=True`, `n_GPUs=1` (its `forward` takes `forward_chop(x)`: shave 10, min_size 160000) on
  `np2Tensor`'s float RGB [0, 255], then `trainer.Trainer.test`'s `utility.quantize(sr, 255)` and
  `save_results_nopostfix`'s `.mul(255 / rgb_range).byte()`.
- SRFBN (`SRFBN_CVPR19`, test options `use_chop` true): the methods `test`, `_overlap_crop_forward`
  (shave 10, min_size 100000, `n_GPUs = 2`: quarters in pairs) and `get_current_visual` cut out of
  `solvers/SRSolver.py` (the module imports torchvision and `scipy.misc`) and bound to a stand-in
  solver holding the official `networks.srfbn_arch.SRFBN`; 8 bits from `utils.util.Tensor2np`
  (`quantize`: clamp to [0, 255], `round`). `Tensor.cuda` is a no-op for `FeedbackBlock`.
- D-DBPN (`DBPN-Pytorch`, `eval.py` defaults with `--model_type DBPN`): the LR PNG read by the
  official `dataset.DatasetFromFolderEval` (PIL) with a ToTensor equivalent, the official `Net` in
  `DataParallel`, loaded from a `module.`-prefixed file as `eval.py` does, `prediction =
  model(input)`, and `eval.py`'s own `save_img` (cut out with `ast`) writing the PNG with cv2 into
  a temporary directory, read back with PIL.
- SwinIR (`main_test_swinir.py`): the script's `main()` end to end in a temporary working
  directory (`--task classical_sr`, a GT folder and an LQ folder holding one odd-sized PNG, a
  `params` checkpoint), optionally with `--tile` / `--tile_overlap`; its PNG read back with cv2.

The LR image is a seeded random uint8 image of odd size (37x29), so the harness input `q / 255`
is exactly what every script reads. Weights are the adapters' seeded `official` configurations
(SwinIR's perturbed so that its attention is far from uniform), loaded strictly into the official
modules; the chop-recursion tests use the `small` configuration (with a small `min_size`, many
quarters). Those outputs never fall on a rounding tie, so a stand-in network that produces ties
checks the quantisation rule (half to even) against each script's own quantisation code.

Also checked: `protocol="exact"` (the default) is the network on the whole image in float
(clamped), so official and exact differ by the chop (RCAN; SRFBN's floats), the tiles (SwinIR
`--tile`) and the rounding; a batch runs one image at a time under the official protocol.
Runtime: about 35 s on 2 CPU cores (the oracles run once each and are cached for the module).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import os
import sys
import tempfile
import textwrap
import types
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from baselines.sr.dbpn import DBPN
from baselines.sr.rcan import RCAN
from baselines.sr.srfbn import SRFBN
from baselines.sr.swinir import SwinIR

from official_code import official_dir, official_imports, timm_stub
from test_sr_dbpn import load_official_net, save_data_parallel, to_tensor

HEIGHT, WIDTH = 37, 29
SCALES = (2, 4)


# -- inputs and comparisons -------------------------------------------------------------------------

def lr_image(seed: int = 0, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A seeded random uint8 RGB image (H, W, 3): smooth colour ramps plus noise, so that outputs of
    random networks span many levels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    ramps = np.stack([60 + 140 * yy / height, 200 - 120 * xx / width, 80 + 90 * (xx + yy) / (height + width)], -1)
    return np.clip(ramps + rng.normal(0, 25, (height, width, 3)), 0, 255).round().astype(np.uint8)


def as_input(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> the harness input: float32 (1, 3, H, W) = levels / 255."""
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255


def levels_of(out: torch.Tensor) -> np.ndarray:
    """The 8-bit levels of an official-protocol output (1, 3, H, W): `round(out * 255)` as uint8
    (H, W, 3), after checking that the output is float32 and already on the level grid."""
    assert out.dtype == torch.float32 and out.dim() == 4 and out.shape[0] == 1
    scaled = out[0].permute(1, 2, 0) * 255
    rounded = torch.round(scaled)
    off = (scaled - rounded).abs().max().item()
    assert off < 1e-3, f"official output is not levels / 255 (max distance to a level {off:.3g})"
    assert rounded.min() >= 0 and rounded.max() <= 255
    return rounded.to(torch.uint8).numpy()


def assert_same_levels(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    """Integer arrays (H, W, 3) equal; on failure: how many values differ, by how much, where."""
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != script's {expected.shape}"
    difference = got.astype(np.int32) - expected.astype(np.int32)
    wrong = np.argwhere(difference != 0)
    assert wrong.size == 0, (
        f"{what}: {len(wrong)} of {difference.size} values differ from the release script's "
        f"(max |diff| {np.abs(difference).max()} levels; first at (row, col, channel) "
        f"{tuple(int(v) for v in wrong[0])}: ours {got[tuple(wrong[0])]}, script's {expected[tuple(wrong[0])]})")


def assert_varied(levels: np.ndarray) -> None:
    """The comparison means something: not (nearly) all values clipped to 0 or 255."""
    inside = np.mean((levels > 0) & (levels < 255))
    assert inside > 0.2, f"only {inside:.0%} of the script's output levels are unclipped"


def half_even_levels(values: torch.Tensor) -> np.ndarray:
    """Float [0, 1]-scale output (1, 3, H, W) -> uint8 (H, W, 3) as the scripts quantise:
    clamp, x 255 in float32, round half to even."""
    return torch.round(values.clamp(0, 1)[0].permute(1, 2, 0) * 255).to(torch.uint8).numpy()


def method(path: Path, class_name: str | None, name: str, namespace: dict) -> types.FunctionType:
    """Function `name` (a method of `class_name` if given) cut out of the official file `path` with
    `ast` and executed unchanged in `namespace`."""
    source = path.read_text(encoding="utf-8-sig")
    body = ast.parse(source).body
    if class_name is not None:
        body = next(n for n in body if isinstance(n, ast.ClassDef) and n.name == class_name).body
    node = next(n for n in body if isinstance(n, ast.FunctionDef) and n.name == name)
    exec(compile(textwrap.dedent(ast.get_source_segment(source, node, padded=True)), str(path), "exec"), namespace)
    return namespace[name]


def lr_tensor255(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (1, 3, H, W) on [0, 255], as RCAN's and SRFBN's `np2Tensor(.., 255)`
    make it (`torch.from_numpy(img.transpose((2, 0, 1))).float()`, times rgb_range / 255 = 1)."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float()[None]


def frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def perturb(network: nn.Module) -> nn.Module:
    """Seeded perturbation that makes a random SwinIR's attention far from uniform (as in
    tests/test_sr_swinir.py), so that what a pixel sees, and tile seams, matter."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in network.named_parameters():
            if "relative_position_bias_table" in name:
                p.add_(2.0 * torch.randn(p.shape, generator=generator))
            elif p.dim() == 2:
                p.add_(torch.randn(p.shape, generator=generator) / p.shape[1] ** 0.5)
    return network


CLASSES = {cls.name: cls for cls in (RCAN, SRFBN, DBPN, SwinIR)}


@functools.cache
def seeded_network(name: str, scale: int, size: str = "official") -> nn.Module:
    """The adapter's network of configuration `size` with seed 0 (SwinIR's perturbed); built once and
    shared by the adapters under test and the oracles (which copy its weights)."""
    network = CLASSES[name].create(scale, size, seed=0).network
    return perturb(network) if name == "SwinIR" else network


def adapter(name: str, scale: int, size: str = "official", **runtime):
    """`Model(network, scale, **runtime)` on the shared seeded network."""
    return CLASSES[name](seeded_network(name, scale, size), scale, **runtime)


@functools.cache
def ours(name: str, scale: int, **runtime) -> torch.Tensor:
    """The adapter's `upscale(lr_image())` (official configuration, seeded network), computed once
    for the tests that compare it."""
    return adapter(name, scale, **runtime).upscale(as_input(lr_image()))


@pytest.fixture(scope="module", autouse=True)
def release_cached_models():
    """The cached networks and outputs (official RCAN, SwinIR: tens of MB each) go with this module."""
    yield
    for cached in (seeded_network, ours, rcan_script, srfbn_script, dbpn_script, swinir_script):
        cached.cache_clear()


# -- RCAN -------------------------------------------------------------------------------------------

RCAN_FILES = ("model/__init__.py", "model/rcan.py", "model/common.py", "utility.py")


def rcan_official_model(network: nn.Module, scale: int, config: dict):
    """The official test code's `model.Model` as `TestRCAN_scripts.sh` sets it up (`--chop`, one GPU,
    no self-ensemble) around the official RCAN with `network`'s weights; and `utility`."""
    root = official_dir("RCAN_OFFICIAL_CODE", "RCAN/RCAN_TestCode/code", required=RCAN_FILES)
    args = types.SimpleNamespace(
        model="RCAN", scale=[scale], self_ensemble=False, chop=True, precision="single", cpu=True, n_GPUs=1,
        save_models=False, pre_train=".", resume=0, print_model=False, rgb_range=255, n_colors=3, res_scale=1,
        data_train="DIV2K", **config)
    with official_imports(root):
        model, utility = importlib.import_module("model"), importlib.import_module("utility")
        reference = model.Model(args, types.SimpleNamespace(dir=".")).eval()
    nn.Module.load_state_dict(reference.model, network.state_dict(), strict=True)
    return reference, utility


@functools.cache
def rcan_script(scale: int) -> np.ndarray:
    """`TestRCAN_scripts.sh` on `lr_image()` with the seeded official weights: uint8 (H, W, 3) as saved."""
    reference, utility = rcan_official_model(seeded_network("RCAN", scale), scale, RCAN.configs["official"])
    with torch.no_grad():
        sr = reference(lr_tensor255(lr_image()), 0)          # trainer.Trainer.test: self.model(lr, idx_scale)
        sr = utility.quantize(sr, 255)                        # ... utility.quantize(sr, self.args.rgb_range)
    return frozen(sr[0].data.mul(255 / 255).byte().permute(1, 2, 0).numpy())   # save_results_nopostfix


@pytest.mark.parametrize("scale", SCALES)
def test_rcan_official_is_the_release_script(scale):
    expected = rcan_script(scale)
    assert_varied(expected)
    got = ours("RCAN", scale, protocol="official")
    assert_same_levels(levels_of(got), expected, f"RCAN x{scale} official")


@pytest.mark.parametrize("scale", SCALES)
def test_rcan_exact_is_the_whole_image_network(scale):
    assert adapter("RCAN", scale).protocol == "exact"   # the default
    lr = as_input(lr_image())
    with torch.no_grad():
        expected = (seeded_network("RCAN", scale)(lr * 255) / 255).clamp(0, 1)   # official forward, unchopped
    got = ours("RCAN", scale, protocol="exact")
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-6


@pytest.mark.parametrize("scale", SCALES)
def test_rcan_chop_makes_official_differ_from_exact(scale):
    """The quarters pool their own channel statistics, so the script's levels are not the exact
    output's rounded (a sanity check that the official protocol chops, not a measured figure)."""
    official = levels_of(ours("RCAN", scale, protocol="official"))
    exact = half_even_levels(ours("RCAN", scale, protocol="exact"))
    assert np.count_nonzero(official != exact) > 0


def test_rcan_chop_recursion_matches_official_forward_chop():
    """A quarter still >= min_size is chopped again: the shared `chop_forward` against the official
    `Model.forward_chop(x, shave=10, min_size=600)` on 37x29 (quarters of 28x24 = 672 pixels are
    chopped once more, into 24x22 = 528: 16 network calls), bit for bit; small configuration."""
    from baselines.sr.chop import chop_forward

    network = seeded_network("RCAN", 2, "small")
    reference, _ = rcan_official_model(network, 2, RCAN.configs["small"])
    x = lr_tensor255(lr_image())
    official_calls, our_calls = [], []
    hook = reference.model.register_forward_hook(lambda module, args, out: official_calls.append(tuple(args[0].shape)))
    try:
        with torch.no_grad():
            expected = reference.forward_chop(x, shave=10, min_size=600)
    finally:
        hook.remove()

    def fn(t: torch.Tensor) -> torch.Tensor:
        our_calls.append(tuple(t.shape))
        return network(t)

    with torch.no_grad():
        got = chop_forward(fn, x, 2, shave=10, min_size=600)
    assert official_calls == [(1, 3, 24, 22)] * 16
    assert our_calls == official_calls
    assert torch.equal(got, expected), f"max |diff| {(got - expected).abs().max().item():.3g}"


# -- SRFBN ------------------------------------------------------------------------------------------

SRFBN_FILES = ("networks/__init__.py", "networks/srfbn_arch.py", "networks/blocks.py", "solvers/SRSolver.py",
               "utils/util.py")


@contextlib.contextmanager
def cuda_is_a_noop():
    """The official `FeedbackBlock.forward` allocates its state with `torch.zeros(...).cuda()`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.Tensor, "cuda", lambda self, *args, **kwargs: self)
        yield


def srfbn_solver(network: nn.Module, scale: int, config: dict) -> types.SimpleNamespace:
    """A stand-in for `SRSolver` at test time (`use_chop` true, no self-ensemble): the official SRFBN
    with `network`'s weights, and the official methods `test`, `_overlap_crop_forward` and
    `get_current_visual` bound to it. Call it under `cuda_is_a_noop()`."""
    root = official_dir("SRFBN_OFFICIAL_REPO", "SRFBN_CVPR19", required=SRFBN_FILES)
    with official_imports(root):
        from networks.srfbn_arch import SRFBN as Official
        util = importlib.import_module("utils.util")
    official = Official(in_channels=3, out_channels=3, upscale_factor=scale, **config).eval()
    official.load_state_dict(network.state_dict(), strict=True)
    namespace = {"torch": torch, "OrderedDict": OrderedDict, "util": util}
    solver = types.SimpleNamespace(model=official, scale=scale, use_chop=True, self_ensemble=False, is_train=False,
                                   opt={"rgb_range": 255}, LR=None, SR=None)
    for name in ("test", "_overlap_crop_forward", "get_current_visual"):
        setattr(solver, name, types.MethodType(method(root / "solvers" / "SRSolver.py", "SRSolver", name, namespace),
                                               solver))
    return solver


@functools.cache
def srfbn_script(scale: int) -> np.ndarray:
    """`test.py` (`use_chop`) on `lr_image()` with the seeded official weights: uint8 (H, W, 3)."""
    solver = srfbn_solver(seeded_network("SRFBN", scale), scale, SRFBN.configs["official"])
    solver.LR = lr_tensor255(lr_image())                     # LR_dataset (np2Tensor), feed_data
    with cuda_is_a_noop():
        solver.test()
    return frozen(solver.get_current_visual(need_HR=False)["SR"])


@pytest.mark.parametrize("scale", SCALES)
def test_srfbn_official_is_the_release_script(scale):
    expected = srfbn_script(scale)
    assert_varied(expected)
    got = ours("SRFBN", scale, protocol="official")
    assert_same_levels(levels_of(got), expected, f"SRFBN x{scale} official")


@pytest.mark.parametrize("scale", SCALES)
def test_srfbn_exact_is_the_whole_image_network(scale):
    assert adapter("SRFBN", scale).protocol == "exact"
    lr = as_input(lr_image())
    with torch.no_grad():
        expected = (seeded_network("SRFBN", scale)(lr * 255)[-1] / 255).clamp(0, 1)   # the last step, unchopped
    got = ours("SRFBN", scale, protocol="exact")
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-6


def test_srfbn_chop_changes_the_script_output():
    """The official quarters (shave 10, in pairs) change the float output: the script's forward is not
    the whole-image forward (a sanity check that the official protocol has something to reproduce;
    after rounding the two can coincide: 16 values differ at x2 here, none at x4)."""
    scale = 2
    solver = srfbn_solver(seeded_network("SRFBN", scale), scale, SRFBN.configs["official"])
    lr = lr_tensor255(lr_image())
    with torch.no_grad(), cuda_is_a_noop():
        chopped = solver._overlap_crop_forward(lr)
        whole = solver.model(lr)[-1]
    assert chopped.shape == whole.shape
    assert (chopped - whole).abs().max().item() > 0


def test_srfbn_chop_recursion_matches_official_overlap_crop_forward():
    """The shared `chop_forward` with `group=2` (SRFBN's hard-coded `n_GPUs = 2`: quarters through the
    network in pairs) against the official `_overlap_crop_forward(x, min_size=600)` on 37x29
    (recursing once: 8 network calls on pairs of 24x22 quarters), bit for bit; small configuration."""
    from baselines.sr.chop import chop_forward

    network = seeded_network("SRFBN", 2, "small")
    solver = srfbn_solver(network, 2, SRFBN.configs["small"])
    x = lr_tensor255(lr_image())
    official_calls, our_calls = [], []
    hook = solver.model.register_forward_hook(lambda module, args, out: official_calls.append(tuple(args[0].shape)))
    try:
        with torch.no_grad(), cuda_is_a_noop():
            expected = solver._overlap_crop_forward(x, shave=10, min_size=600)
    finally:
        hook.remove()

    def fn(t: torch.Tensor) -> torch.Tensor:
        our_calls.append(tuple(t.shape))
        return network(t)[-1]

    with torch.no_grad():
        got = chop_forward(fn, x, 2, shave=10, min_size=600, group=2)
    assert official_calls == [(2, 3, 24, 22)] * 8
    assert our_calls == official_calls
    assert torch.equal(got, expected), f"max |diff| {(got - expected).abs().max().item():.3g}"


# -- D-DBPN -----------------------------------------------------------------------------------------

DBPN_FILES = ("dbpn.py", "base_networks.py", "dataset.py", "eval.py")


@functools.cache
def dbpn_script(scale: int) -> np.ndarray:
    """`eval.py --model_type DBPN --upscale_factor <scale>` (defaults: no chop, no self-ensemble, no
    residual) on `lr_image()` with the seeded official weights: uint8 (H, W, 3) of the PNG it writes."""
    repo = official_dir("DBPN_OFFICIAL_REPO", "DBPN-Pytorch", required=DBPN_FILES)
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        weights = work / f"DBPN_x{scale}.pth"
        save_data_parallel(adapter("DBPN", scale), weights)   # the released files' DataParallel layout
        model = torch.nn.DataParallel(load_official_net(repo)(num_channels=3, scale_factor=scale,
                                                              **DBPN.configs["official"]))
        model.load_state_dict(torch.load(weights, map_location=lambda storage, loc: storage))
        model.eval()

        folder = work / "Input" / f"Set5_LR_x{scale}"
        folder.mkdir(parents=True)
        Image.fromarray(lr_image()).save(folder / "img.png")
        with official_imports(repo):
            dataset = importlib.import_module("dataset")
        # `get_eval_set`: the official dataset with torchvision's ToTensor (not importable here; the
        # equivalent: uint8 HWC -> float CHW / 255).
        test_set = dataset.DatasetFromFolderEval(str(folder), scale,
                                                 transform=lambda image: to_tensor(np.array(image))[0])
        batch = next(iter(torch.utils.data.DataLoader(test_set, batch_size=1, shuffle=False)))
        opt = types.SimpleNamespace(output=str(work / "Results") + "/", test_dataset=f"Set5_LR_x{scale}")
        save_img = method(repo / "eval.py", None, "save_img", {"os": os, "cv2": cv2, "opt": opt})
        with torch.no_grad():
            prediction = model(batch[0])                      # eval(): opt.chop_forward, opt.self_ensemble off
        save_img(prediction.cpu().data, batch[2][0])
        with Image.open(work / "Results" / f"Set5_LR_x{scale}" / "img.png") as saved:
            return frozen(np.array(saved.convert("RGB")))


@pytest.mark.parametrize("scale", SCALES)
def test_dbpn_official_is_the_release_script(scale):
    expected = dbpn_script(scale)
    assert_varied(expected)
    got = ours("DBPN", scale, protocol="official")
    assert_same_levels(levels_of(got), expected, f"DBPN x{scale} official")


@pytest.mark.parametrize("scale", SCALES)
def test_dbpn_exact_is_the_whole_image_network(scale):
    """Exact is `model(input)` clamped, in float; the script has no memory device, so its levels are
    the exact output's rounded half to even: official and exact differ only by the quantisation."""
    assert adapter("DBPN", scale).protocol == "exact"
    lr = as_input(lr_image())
    with torch.no_grad():
        expected = seeded_network("DBPN", scale)(lr).clamp(0, 1)
    got = ours("DBPN", scale, protocol="exact")
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-6
    assert_same_levels(half_even_levels(got), dbpn_script(scale), f"DBPN x{scale} exact, rounded half to even")


# -- SwinIR -----------------------------------------------------------------------------------------

SWINIR_FILES = ("main_test_swinir.py", "models/network_swinir.py", "utils/util_calculate_psnr_ssim.py")


@functools.cache
def swinir_script(scale: int, tile: int | None = None, tile_overlap: int | None = None, seed: int = 0,
                  height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """`python main_test_swinir.py --task classical_sr --scale <s> --training_patch_size 64 --model_path
    <file> --folder_lq LQ --folder_gt GT [--tile T] [--tile_overlap O]` on `lr_image(seed, height,
    width)` with the seeded (perturbed) official weights, run through its `main()` in a temporary
    working directory: uint8 RGB (H, W, 3) of the PNG it writes."""
    root = official_dir("CFANET_SWINIR_OFFICIAL", "SwinIR", required=SWINIR_FILES)
    rgb = lr_image(seed, height, width)
    argv = ["main_test_swinir.py", "--task", "classical_sr", "--scale", str(scale),
            "--training_patch_size", str(SwinIR.configs["official"]["img_size"]), "--model_path", "model.pth",
            "--folder_lq", "LQ", "--folder_gt", "GT"]
    argv += ["--tile", str(tile)] if tile is not None else []
    argv += ["--tile_overlap", str(tile_overlap)] if tile_overlap is not None else []
    stub = timm_stub(trunc_normal_=torch.nn.init.trunc_normal_,
                     to_2tuple=lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v),
                     drop_path=lambda p=0.0: torch.nn.Identity())
    with tempfile.TemporaryDirectory() as directory, pytest.MonkeyPatch.context() as patch:
        work = Path(directory)
        (work / "LQ").mkdir()
        (work / "GT").mkdir()
        # classical_sr goes through the GT folder and reads `<folder_lq>/<name>x<scale><ext>` for each.
        assert cv2.imwrite(str(work / "LQ" / f"imgx{scale}.png"), np.ascontiguousarray(rgb[..., ::-1]))
        gt = np.repeat(np.repeat(rgb, scale, 0), scale, 1)
        assert cv2.imwrite(str(work / "GT" / "img.png"), np.ascontiguousarray(gt[..., ::-1]))
        torch.save({"params": seeded_network("SwinIR", scale).state_dict()}, work / "model.pth")
        patch.chdir(work)
        patch.setattr(sys, "argv", argv)
        with official_imports(root, stubs=stub):
            importlib.import_module("main_test_swinir").main()
        saved = cv2.imread(str(work / "results" / f"swinir_classical_sr_x{scale}" / "img_SwinIR.png"), cv2.IMREAD_COLOR)
    assert saved is not None, "main_test_swinir.py wrote no image"
    return frozen(np.ascontiguousarray(saved[..., ::-1]))


@pytest.mark.parametrize("scale", SCALES)
def test_swinir_official_is_the_release_script(scale):
    expected = swinir_script(scale)
    assert_varied(expected)
    got = ours("SwinIR", scale, protocol="official")
    assert_same_levels(levels_of(got), expected, f"SwinIR x{scale} official")


@pytest.mark.parametrize("scale, tile, overlap", [(2, 16, 8), (4, 16, 8), (2, 24, 12)])
def test_swinir_official_tiles_are_the_release_script_tiles(scale, tile, overlap):
    """`--tile` on the padded 40x32 input: overlapping tiles averaged (`E.div_(W)` in the script's
    `test`); 16/8 gives 4 x 3 tiles, 24/12 gives 3 x 2 tiles whose overlap is not a multiple of the
    window."""
    expected = swinir_script(scale, tile, overlap)
    assert_varied(expected)
    got = ours("SwinIR", scale, protocol="official", tile=tile, tile_overlap=overlap)
    assert_same_levels(levels_of(got), expected, f"SwinIR x{scale} official, tile {tile}, overlap {overlap}")
    assert np.count_nonzero(swinir_script(scale) != expected) > 0   # the tiles do change the script's result


def test_swinir_official_default_overlap_is_the_scripts():
    """Under the official protocol the overlap defaults to the script's 32 (`--tile_overlap`): 61x45
    is padded to 64x48, tiles of 48 then give two tiles sharing 32 rows."""
    model = adapter("SwinIR", 2, protocol="official", tile=48)
    assert model.tile_overlap == 32
    expected = swinir_script(2, 48, None, 1, 61, 45)
    got = model.upscale(as_input(lr_image(1, 61, 45)))
    assert_same_levels(levels_of(got), expected, "SwinIR x2 official, tile 48, default overlap")


def test_swinir_official_overlap_must_be_below_the_tile():
    """The script cannot tile when the overlap reaches the tile: `--tile 16` with the default overlap
    32 averages a single corner tile and divides by zero elsewhere (NaN cast to uint8), and a stride
    of 0 (`--tile 48` on 40x32: the tile becomes 32) stops it in `range()`; the adapter refuses both."""
    lr = as_input(lr_image())
    for tile in (16, 48):
        with pytest.raises(ValueError, match="tile_overlap"):
            adapter("SwinIR", 2, protocol="official", tile=tile).upscale(lr)


@pytest.mark.parametrize("scale", SCALES)
def test_swinir_exact_is_the_whole_image_network(scale):
    """Exact: the script's padding, the network on the whole padded image and the crop, clamped, in
    float; its half-to-even rounding is the (untiled) script's output."""
    assert adapter("SwinIR", scale).protocol == "exact"
    lr = as_input(lr_image())
    with torch.no_grad():
        # main_test_swinir.py, window_size 8:
        #   h_pad = (h_old // window_size + 1) * window_size - h_old   (w_pad likewise)
        #   img_lq = torch.cat([img_lq, torch.flip(img_lq, [2])], 2)[:, :, :h_old + h_pad, :]
        #   img_lq = torch.cat([img_lq, torch.flip(img_lq, [3])], 3)[:, :, :, :w_old + w_pad]
        #   output = output[..., :h_old * args.scale, :w_old * args.scale]
        padded = torch.cat([lr, torch.flip(lr, [2])], 2)[:, :, :(HEIGHT // 8 + 1) * 8, :]
        padded = torch.cat([padded, torch.flip(padded, [3])], 3)[:, :, :, :(WIDTH // 8 + 1) * 8]
        expected = seeded_network("SwinIR", scale)(padded)[..., :HEIGHT * scale, :WIDTH * scale].clamp(0, 1)
    got = ours("SwinIR", scale, protocol="exact")
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-6
    assert_same_levels(half_even_levels(got), swinir_script(scale), f"SwinIR x{scale} exact, rounded half to even")


# -- all four ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CLASSES))
def test_official_runs_one_image_at_a_time(name):
    """The scripts run one image per forward pass: under the official protocol a batch of two gives
    each image's own result, bit for bit, as levels / 255 (small configuration, 23x19)."""
    model = CLASSES[name].create(2, "small", seed=0, protocol="official")
    assert model.protocol == "official"
    a, b = as_input(lr_image(2, 23, 19)), as_input(lr_image(3, 23, 19))
    batch = model.upscale(torch.cat([a, b]))
    assert batch.dtype == torch.float32 and batch.shape == (2, 3, 46, 38)
    assert torch.equal(batch, torch.cat([model.upscale(a), model.upscale(b)]))
    assert torch.equal(batch, torch.round(batch * 255) / 255)


class TieNetwork(nn.Module):
    """A stand-in network whose outputs are rounding ties: nearest upsampling plus half a level
    (on [0, 255] for RCAN and SRFBN, whose scripts quantise that scale; on [0, 1] for D-DBPN and
    SwinIR, where the tie survives the scripts' float32 `x * 255` for part of the values)."""

    window_size = 8  # read by the SwinIR adapter

    def __init__(self, scale: int, native_range: float, steps: bool = False):
        super().__init__()
        self.scale, self.native_range, self.steps = scale, native_range, steps

    def forward(self, x: torch.Tensor, all_steps: bool = True):   # `all_steps`: SRFBN's keyword
        up = x.repeat_interleave(self.scale, -2).repeat_interleave(self.scale, -1)
        out = up + 0.5 * self.native_range / 255
        return [out] if self.steps else out


@pytest.mark.parametrize("name", list(CLASSES))
def test_official_levels_round_ties_half_to_even(name, tmp_path):
    """The networks above never produce an exact tie; this stand-in produces many, quantised by the
    scripts' own code: RCAN's `utility.quantize`, SRFBN's `utils.util.quantize` (both
    `torch.round`), D-DBPN's `save_img` (OpenCV's float-to-uint8 conversion) and SwinIR's last lines
    (`output.clamp_(0, 1)`, `(output * 255.0).round().astype(np.uint8)`, NumPy), all half to even.
    Each stand-in is pointwise, so the chop and the padding do not change the values."""
    scale, rgb = 2, lr_image()
    native = 255.0 if name in ("RCAN", "SRFBN") else 1.0
    network = TieNetwork(scale, native, steps=name == "SRFBN")
    got = levels_of(CLASSES[name](network, scale, protocol="official").upscale(as_input(rgb)))
    with torch.no_grad():
        raw = network(lr_tensor255(rgb) if native == 255.0 else as_input(rgb))
    raw = raw[-1] if isinstance(raw, list) else raw
    if name == "RCAN":
        root = official_dir("RCAN_OFFICIAL_CODE", "RCAN/RCAN_TestCode/code", required=RCAN_FILES)
        with official_imports(root):
            expected = importlib.import_module("utility").quantize(raw, 255)
        expected = expected[0].byte().permute(1, 2, 0).numpy()
    elif name == "SRFBN":
        root = official_dir("SRFBN_OFFICIAL_REPO", "SRFBN_CVPR19", required=SRFBN_FILES)
        with official_imports(root):
            expected = importlib.import_module("utils.util").Tensor2np([raw[0]], 255)[0]
    elif name == "DBPN":
        repo = official_dir("DBPN_OFFICIAL_REPO", "DBPN-Pytorch", required=DBPN_FILES)
        opt = types.SimpleNamespace(output=str(tmp_path) + "/", test_dataset="ties")
        method(repo / "eval.py", None, "save_img", {"os": os, "cv2": cv2, "opt": opt})(raw, "ties.png")
        with Image.open(tmp_path / "ties" / "ties.png") as saved:
            expected = np.array(saved.convert("RGB"))
    else:
        output = raw.squeeze().float().cpu().clamp_(0, 1).numpy().transpose(1, 2, 0)
        expected = (output * 255.0).round().astype(np.uint8)
    ties = raw.clamp(0, native)[0].permute(1, 2, 0).numpy() * np.float32(255 / native)
    assert np.count_nonzero(ties - np.floor(ties) == 0.5) > ties.size // 10   # the test has ties to round
    assert_same_levels(got, expected, f"{name} rounding of ties")


@pytest.mark.parametrize("name", list(CLASSES))
def test_unknown_protocol_is_refused(name):
    with pytest.raises(ValueError, match="protocol"):
        CLASSES[name].create(2, "small", protocol="paper")
