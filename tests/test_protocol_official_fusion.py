"""The "official" inference protocol of the fusion methods (issue 18; `cfanet.protocols`).

`protocol="official"` reproduces a method's release script bit for bit and returns the script's
8-bit levels / 255 as float32; `protocol="exact"` (the default) is the whole-image float output that
the harness quantises once, rounding half up. The oracles here run the authors' own scripts:

- CF-Net: the official `test.py` (ytZhang99/CF-Net, ../shared/official/CF-Net or
  $CFNET_OFFICIAL_REPO; see `official_code.py`), `Test().test()` itself: `cv2.imread` (BGR uint8) of
  PNGs we write, its `ToTensor` + `Normalize(0.5, 0.5)`, its forward pass (the official `model.py`,
  built from `option.py` with the configuration's `--num_features/--num_groups/--num_cfbs` and our
  seeded weights, loaded from an official-style container `{"model": state_dict}`), its
  `0.5 * sr_over[-1] + 0.5 * sr_under[-1]`, `astype(np.uint8)` and `cv2.imwrite`; the PNG it
  writes is read back (BGR -> RGB) and compared with `round(ours * 255)`. Outside the computation:
  `Module.cuda`, `Tensor.cuda` and `torch.cuda.synchronize` are the identity / a no-op on the CPU,
  and torchvision (which does not import with the project's CPU torch) is replaced by
  `_cfnet_torchvision`, torchvision's `Compose`, `ToTensor` (ndarray HWC uint8 -> CHW float / 255)
  and `Normalize` (`(x - mean) / std` per channel) for the calls `test.py` makes.
- MEF-Net: the official test pipeline, `Main.main(config)` with `--train False --use_cuda False
  --ckpt MEFNet_release.pt` (makedede/MEFNet, ../shared/official/MEFNet or $MEFNET_OFFICIAL_REPO):
  `Trainer.__init__` (its datasets and transforms, `E2EMEF(is_guided=True)`, `_load_checkpoint` of
  the release file in ../shared/data/weights/mefnet) and `Trainer.eval`, whose `_save_image` clamps
  the RGB result to [0, 1] and calls `torchvision.utils.save_image`. Stand-ins, outside the
  computation: `_mefnet_torchvision` gives torchvision 0.2.1's `transforms.Compose`, `ToTensor`
  (PIL RGB -> CHW float / 255), `Resize(int)` (shorter side to `size`, the other `int(size * long /
  short)`, PIL `resize` with the given filter) and `utils.save_image`, whose 0.2.1 body is
  `make_grid` (a single 3-channel image unchanged, a 1-channel one repeated to 3) then
  `grid.mul(255).clamp(0, 255).byte()` (truncation) written as PNG by PIL; `pandas.read_csv` (the
  test list, one sequence folder per line) is `_FakeFrame`; `torch.load` gets
  `weights_only=False, map_location="cpu"` (torch >= 2.6 refuses the release file's numpy scalars);
  `TrainModel.DataLoader` is made to load in the main process (`num_workers=0`, no pinned memory:
  the same samples). The release weights are required (skipped without ../shared/data).

U2Fusion, MGFF and Fast SPD-MEF list both protocols and compute the same thing under each; CFANet
has only the exact protocol.

Results when written (CPU, torch 2.13, Pillow 13, OpenCV 5.1): CF-Net official = the script's PNGs
in every value (small x2 and x4 on two seeded 29x37 pairs, 0 of 12,876 / 51,504 values per pair
differ; official configuration x2 on one pair, 0 of 12,876), while rounding (exact) differs from
them by one level in ~50% of the values. MEF-Net official = the script's PNG in every value on
MEFB's House (340x512, 0 of 522,240) and a 149x203 crop of it (0 of 90,741); the script's float
result equals our exact output bit for bit; rounding differs from the PNG in ~45% of the values.
`tests/test_cfnet.py::test_matches_official_module` and `tests/test_mefnet.py` hold the module-level
parity; this file runs the scripts themselves, so it does not reuse `test_cfnet._import_official`
(which loads `model.py` under another name and sets only `--scale`: `test.py` imports `model` and
`option` by their own names and needs its data, weights and output options on the command line).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from cfanet.images import quantize
from cfanet.methods import spec_of

from official_code import official_dir, official_imports

RELEASE = Path("weights") / "mefnet" / "MEFNet_release.pt"
# CF-Net inputs: odd-sized seeded random 8-bit pairs (two pairs, so that the script runs two images).
CFNET_LR_SIZE = (29, 37)


# -- helpers ----------------------------------------------------------------------------------------

@contextlib.contextmanager
def _replace_modules(modules: dict[str, types.ModuleType]):
    """`modules` in `sys.modules` inside the block, whatever was there (the `None` that
    `official_imports` puts for torchvision included); the previous entries back afterwards."""
    missing = object()
    previous = {name: sys.modules.get(name, missing) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, module in previous.items():
            if module is missing:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _compose(transforms):
    """torchvision's `Compose`: the transforms in order."""
    def apply(x):
        for transform in transforms:
            x = transform(x)
        return x
    return apply


def _load_source(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _levels(x: torch.Tensor) -> np.ndarray:
    """Harness output (N, 3, H, W) on [0, 1] -> its 8-bit levels, (N, H, W, 3) uint8 (exact for levels / 255)."""
    return torch.round(x.double() * 255).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _as_input(rgb_u8: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> harness float32 (N, 3, H, W) on [0, 1]."""
    return torch.from_numpy(rgb_u8).permute(0, 3, 1, 2).float().div(255).contiguous()


@contextlib.contextmanager
def _forward_batch_sizes(network: torch.nn.Module):
    """The batch size of each forward call of `network` inside the block (its first input's)."""
    sizes: list[int] = []
    handle = network.register_forward_pre_hook(lambda module, args: sizes.append(int(args[0].shape[0])))
    try:
        yield sizes
    finally:
        handle.remove()


def _mismatch(ours: np.ndarray, theirs: np.ndarray) -> str:
    diff = np.abs(ours.astype(np.int16) - theirs.astype(np.int16))
    return f"{int((diff > 0).sum())} of {diff.size} values differ, max |difference| {int(diff.max())}"


# -- CF-Net: the official test.py ---------------------------------------------------------------------

def _cfnet_torchvision() -> dict[str, types.ModuleType]:
    """torchvision and torchvision.transforms with what CF-Net's `test.py` uses, as torchvision does it."""
    transforms = types.ModuleType("torchvision.transforms")

    def to_tensor():
        # torchvision `ToTensor` on an ndarray (H, W, C) uint8: CHW, float32, / 255.
        return lambda pic: torch.from_numpy(pic.transpose((2, 0, 1))).contiguous().float().div(255)

    def normalize(mean, std):
        # torchvision `Normalize`: per channel (x - mean) / std, in the tensor's dtype.
        def apply(tensor):
            m = torch.as_tensor(mean, dtype=tensor.dtype)[:, None, None]
            s = torch.as_tensor(std, dtype=tensor.dtype)[:, None, None]
            return tensor.sub(m).div(s)
        return apply

    transforms.Compose, transforms.ToTensor, transforms.Normalize = _compose, to_tensor, normalize
    torchvision = types.ModuleType("torchvision")
    torchvision.transforms = transforms
    return {"torchvision": torchvision, "torchvision.transforms": transforms}


def run_cfnet_test_py(repo: Path, scale: int, config: dict, state_dict: dict, over: np.ndarray,
                      under: np.ndarray, workdir: Path) -> np.ndarray:
    """The official `test.py` (`Test().test()`) on the pairs `over`, `under` ((N, H, W, 3) uint8 RGB)
    with `state_dict` -> the PNGs it writes, read back as (N, sH, sW, 3) uint8 RGB."""
    import cv2

    data, weights, results = workdir / "dataset", workdir / "model", workdir / "test_results"
    for folder in (data / "lr_over", data / "lr_under", weights, results):
        folder.mkdir(parents=True)
    for i in range(over.shape[0]):
        assert cv2.imwrite(str(data / "lr_over" / f"{i:03d}.png"), np.ascontiguousarray(over[i, :, :, ::-1]))
        assert cv2.imwrite(str(data / "lr_under" / f"{i:03d}.png"), np.ascontiguousarray(under[i, :, :, ::-1]))
    torch.save({"model": state_dict}, weights / "model.pth")
    argv = ["test.py", "--scale", str(scale), "--dir_test", f"{data}/", "--model_path", f"{weights}/",
            "--model", "model.pth", "--save_dir", str(results), "--ext", ".png",
            "--num_features", str(config["num_features"]), "--num_groups", str(config["num_groups"]),
            "--num_cfbs", str(config["num_cfbs"])]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", argv)
        mp.setattr(torch.nn.Module, "cuda", lambda self, *args, **kwargs: self)
        mp.setattr(torch.Tensor, "cuda", lambda self, *args, **kwargs: self)
        mp.setattr(torch.cuda, "synchronize", lambda *args, **kwargs: None)
        with official_imports(repo), _replace_modules(_cfnet_torchvision()):
            script = _load_source(repo / "test.py", f"cfnet_official_test_x{scale}")
            script.Test().test()
    saved = sorted(results.glob("*.png"))
    assert [p.name for p in saved] == [f"{i:03d}.png" for i in range(over.shape[0])]
    return np.stack([cv2.imread(str(p), cv2.IMREAD_UNCHANGED)[:, :, ::-1] for p in saved])


def _cfnet_pairs(count: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """`count` seeded random 8-bit over/under pairs of CFNET_LR_SIZE, (N, H, W, 3) uint8 RGB: a bright
    and a dark exposure of the same smoothed noise (so that the values reach both ends)."""
    rng = np.random.default_rng(18)
    base = rng.integers(0, 256, (count, *CFNET_LR_SIZE, 3)).astype(np.float64)
    base = (base + np.roll(base, 1, axis=1) + np.roll(base, 1, axis=2)) / 3
    over = np.clip(base * 1.6 + 40, 0, 255).astype(np.uint8)
    under = np.clip(base * 0.35, 0, 255).astype(np.uint8)
    return over, under


@functools.lru_cache(maxsize=None)
def _cfnet_official_script(scale: int, size: str, count: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(over, under, the official script's output) for `_cfnet_pairs(count)` and `CFNet.create(scale,
    size, seed=0)`'s weights; computed once per module (the script is the slow part)."""
    import tempfile

    from baselines.joint.cfnet import CFNet

    repo = official_dir("CFNET_OFFICIAL_REPO", "CF-Net", required=("model.py", "option.py", "test.py"))
    over, under = _cfnet_pairs(count)
    weights = CFNet.create(scale, size, seed=0).network.state_dict()
    with tempfile.TemporaryDirectory() as workdir:
        script = run_cfnet_test_py(repo, scale, dict(CFNet.configs[size]), weights, over, under, Path(workdir))
    return over, under, script


# (scale, configuration, pairs): the official configuration (17M parameters) takes ~15 s on a CPU.
CFNET_CASES = [(2, "small", 2), (4, "small", 2),
               pytest.param(2, "official", 1, marks=pytest.mark.slow, id="2-official-1")]


@pytest.mark.parametrize("scale, size, count", CFNET_CASES)
def test_cfnet_official_equals_official_test_py(scale, size, count):
    from baselines.joint.cfnet import CFNet

    over, under, script = _cfnet_official_script(scale, size, count)
    assert script.shape == (over.shape[0], scale * over.shape[1], scale * over.shape[2], 3)
    model = CFNet.create(scale, size, seed=0, protocol="official")
    for i in range(over.shape[0]):   # one pair at a time, as the script
        out = model.fuse_upscale(_as_input(over[i:i + 1]), _as_input(under[i:i + 1]))
        assert out.dtype == torch.float32 and out.shape == (1, 3, *script.shape[1:3])
        assert torch.equal(out * 255, torch.round(out * 255))   # 8-bit levels / 255
        ours = _levels(out)[0]
        assert np.array_equal(ours, script[i]), f"pair {i}: {_mismatch(ours, script[i])}"


def test_cfnet_exact_is_the_rounded_whole_image_float():
    from baselines.joint.cfnet import CFNet

    over, under = _cfnet_pairs()
    over, under = _as_input(over), _as_input(under)
    exact = CFNet.create(2, "small", seed=0, protocol="exact").fuse_upscale(over, under)
    assert torch.equal(exact, CFNet.create(2, "small", seed=0).fuse_upscale(over, under))   # the default
    floating = CFNet.create(2, "small", seed=0, output_mode="float")
    with torch.no_grad():
        fused_255 = floating.fused_255(over, under)
    rounded = torch.floor(fused_255.clamp(0, 255) + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(_levels(exact), rounded), _mismatch(_levels(exact), rounded)
    # What the harness does with the unquantised output: the same levels (ties aside, none here).
    harness = quantize(floating.fuse_upscale(over, under).permute(0, 2, 3, 1))
    assert np.array_equal(_levels(exact), harness), _mismatch(_levels(exact), harness)
    # And the official truncation differs from it (half a level darker on average).
    official = _levels(CFNet.create(2, "small", seed=0, protocol="official").fuse_upscale(over, under))
    assert (official <= _levels(exact)).all() and (official != _levels(exact)).any()


def test_cfnet_official_batch_is_one_image_per_forward():
    from baselines.joint.cfnet import CFNet

    over, under, script = _cfnet_official_script(2, "small")
    model = CFNet.create(2, "small", seed=0, protocol="official")
    with _forward_batch_sizes(model.network) as sizes:
        batch = model.fuse_upscale(_as_input(over), _as_input(under))
    assert sizes == [1, 1]   # one image per forward pass, as test.py
    singles = torch.cat([model.fuse_upscale(_as_input(over[i:i + 1]), _as_input(under[i:i + 1]))
                         for i in range(over.shape[0])])
    assert batch.shape == singles.shape == (2, 3, *script.shape[1:3])
    assert torch.equal(batch, singles)
    assert np.array_equal(_levels(batch), script), _mismatch(_levels(batch), script)


# -- MEF-Net: the official Main.py --train False ------------------------------------------------------

class _FakeFrame:
    """What `pd.read_csv(list_file, sep='\\n', header=None)` gives the official `ImageSeqDataset`: one
    row per line, read through `.iloc[row, 0]`, and its length."""

    def __init__(self, path, *args, **kwargs):
        self.rows = [line for line in Path(path).read_text().splitlines() if line]
        self.iloc = self

    def __getitem__(self, key):
        row, column = key
        assert column == 0
        return self.rows[row]

    def __len__(self):
        return len(self.rows)


def _mefnet_torchvision(saved: dict[Path, torch.Tensor]) -> dict[str, types.ModuleType]:
    """torchvision 0.2.1's `transforms` (Compose, ToTensor, Resize) and `utils.save_image`, as the
    official MEF-Net code calls them; `saved` receives each image `save_image` is given (a copy,
    before its 8-bit conversion), by path."""
    from PIL import Image

    transforms = types.ModuleType("torchvision.transforms")

    def to_tensor():
        # ToTensor of a PIL RGB image: (H, W, 3) bytes -> CHW float / 255.
        def apply(pic):
            assert pic.mode == "RGB", pic.mode
            return torch.from_numpy(np.asarray(pic).copy()).permute(2, 0, 1).contiguous().float().div(255)
        return apply

    def resize(size, interpolation=Image.BILINEAR):
        # torchvision 0.2.1 `F.resize` with an int: the shorter side to `size`, the other int(size * long / short).
        assert isinstance(size, int)

        def apply(img):
            w, h = img.size
            if (w <= h and w == size) or (h <= w and h == size):
                return img
            if w < h:
                return img.resize((size, int(size * h / w)), interpolation)
            return img.resize((int(size * w / h), size), interpolation)
        return apply

    transforms.Compose, transforms.ToTensor, transforms.Resize = _compose, to_tensor, resize

    utils = types.ModuleType("torchvision.utils")

    def save_image(tensor, filename, nrow=8, padding=2, normalize=False, range=None, scale_each=False,
                   pad_value=0):
        # torchvision 0.2.1 `save_image` of one image: `make_grid` returns a 3-channel image as it is
        # (a 1-channel one repeated to 3), then `grid.mul(255).clamp(0, 255).byte()`: truncation.
        # (Called by TrainModel.py `Trainer._save_image`, after its own `t[t > 1] = 1; t[t < 0] = 0`.)
        assert tensor.dim() == 3 and not normalize, tensor.shape
        grid = torch.cat((tensor, tensor, tensor), 0) if tensor.size(0) == 1 else tensor
        saved[Path(filename)] = grid.detach().clone()
        ndarr = grid.mul(255).clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy()
        Image.fromarray(ndarr).save(filename)

    utils.save_image = save_image
    torchvision = types.ModuleType("torchvision")
    torchvision.transforms, torchvision.utils = transforms, utils
    return {"torchvision": torchvision, "torchvision.transforms": transforms, "torchvision.utils": utils}


def run_mefnet_official_test(repo: Path, checkpoint: Path, over: np.ndarray, under: np.ndarray,
                             workdir: Path) -> tuple[np.ndarray, torch.Tensor]:
    """The official `Main.py --train False --use_cuda False` on one pair ((H, W, 3) uint8 RGB) ->
    (the fused PNG it writes, read back as (H, W, 3) uint8 RGB; the float RGB (3, H, W) that
    `_save_image` passed to `save_image`, clamped to [0, 1])."""
    from PIL import Image

    images, fused, weight_maps = workdir / "images", workdir / "fused_result", workdir / "weighting_maps"
    for folder in (images / "pair", fused, weight_maps):
        folder.mkdir(parents=True)
    Image.fromarray(over).save(images / "pair" / "1_over.png")
    Image.fromarray(under).save(images / "pair" / "2_under.png")
    for name in ("train.txt", "test.txt"):
        (images / name).write_text("pair\n")
    argv = ["Main.py", "--train", "False", "--use_cuda", "False", "--ckpt", checkpoint.name,
            "--ckpt_path", f"{checkpoint.parent}/", "--trainset", f"{images}/", "--testset", f"{images}/",
            "--fused_img_path", f"{fused}/", "--weight_map_path", f"{weight_maps}/"]
    saved: dict[Path, torch.Tensor] = {}
    # The optimizer that `Trainer.__init__` builds imports torch._dynamo, which probes installed
    # modules by name (a stand-in without a spec breaks that): import it before the stand-ins exist.
    importlib.import_module("torch._dynamo")
    pandas = types.ModuleType("pandas")
    pandas.read_csv = _FakeFrame
    load = torch.load
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", argv)
        mp.setattr(torch, "load", lambda f, *args, **kwargs: load(f, *args, **{**kwargs, "weights_only": False,
                                                                               "map_location": "cpu"}))
        with official_imports(repo), _replace_modules({**_mefnet_torchvision(saved), "pandas": pandas}):
            main = importlib.import_module("Main")
            train_model = importlib.import_module("TrainModel")
            loader = train_model.DataLoader
            mp.setattr(train_model, "DataLoader",
                       lambda *args, **kwargs: loader(*args, **{**kwargs, "num_workers": 0, "pin_memory": False}))
            main.main(main.parse_config())
    assert sorted(p.name for p in fused.iterdir()) == ["0_0_0.png"]
    png = np.asarray(Image.open(fused / "0_0_0.png").convert("RGB"))
    return png, saved[fused / "0_0_0.png"]


def _mefb_pair(shared_data: Path, scene: str) -> tuple[np.ndarray, np.ndarray]:
    from cfanet.images import read_image_array

    folder = shared_data / "mefb" / scene
    return tuple(read_image_array(next(folder.glob(f"{role}.*"))) for role in ("over", "under"))


@pytest.fixture(scope="module")
def mefnet_official(shared_data, tmp_path_factory):
    """The official MEF-Net test run with the release weights on MEFB's House pair (full size, and an
    odd-sized crop): {name: (over, under, official PNG, official float)}."""
    repo = official_dir("MEFNET_OFFICIAL_REPO", "MEFNet",
                        required=("Main.py", "TrainModel.py", "ImageDataset.py", "batch_transformers.py",
                                  "e2emef.py", "mefssim.py", "guided_filter_pytorch/guided_filter.py"))
    checkpoint = shared_data / RELEASE
    if not checkpoint.is_file():
        pytest.skip(f"MEF-Net release weights not found at {checkpoint}")
    over, under = _mefb_pair(shared_data, "House")
    runs = {}
    for name, crop in (("House", (slice(None), slice(None))), ("House crop", (slice(31, 180), slice(57, 260)))):
        o, u = np.ascontiguousarray(over[crop]), np.ascontiguousarray(under[crop])
        png, floating = run_mefnet_official_test(repo, checkpoint, o, u, tmp_path_factory.mktemp("mefnet"))
        runs[name] = (o, u, png, floating)
    return runs


@pytest.mark.parametrize("name", ["House", "House crop"])
def test_mefnet_official_equals_official_save_image(shared_data, mefnet_official, name):
    from baselines.mef.mefnet import MEFNet

    over, under, png, floating = mefnet_official[name]
    assert png.shape == over.shape
    # The script's PNG is the truncation of its clamped float result (torchvision 0.2.1 save_image).
    truncated = torch.floor(floating.mul(255).clamp(0, 255)).to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(png, truncated)
    model = MEFNet.from_checkpoint(shared_data / RELEASE, protocol="official")
    out = model.fuse(_as_input(over[None]), _as_input(under[None]))
    assert out.dtype == torch.float32 and out.shape == (1, 3, *over.shape[:2])
    assert torch.equal(out * 255, torch.round(out * 255))   # 8-bit levels / 255
    ours = _levels(out)[0]
    assert np.array_equal(ours, png), _mismatch(ours, png)


def test_mefnet_exact_is_unchanged_and_differs_from_official(shared_data, mefnet_official):
    from baselines.mef.mefnet import MEFNet
    from cfanet.images import read_image_array

    over, under, png, floating = mefnet_official["House"]
    inputs = (_as_input(over[None]), _as_input(under[None]))
    exact = MEFNet.from_checkpoint(shared_data / RELEASE, protocol="exact").fuse(*inputs)
    assert torch.equal(exact, MEFNet.from_checkpoint(shared_data / RELEASE).fuse(*inputs))   # the default
    # Exact is the official float result (same machine; other thread counts move it by < 5e-4, see
    # tests/test_mefnet.py), quantised by the harness with rounding: MEFB's published images.
    assert (exact[0] - floating).abs().max() <= 5e-4
    rounded = quantize(exact[0].permute(1, 2, 0))
    mefb = read_image_array(shared_data / "mefb" / "House" / "fused_MEFNet.png")
    assert (rounded == mefb).mean() > 0.99
    official = _levels(MEFNet.from_checkpoint(shared_data / RELEASE, protocol="official").fuse(*inputs))[0]
    assert (official != rounded).any() and (official <= rounded).all()
    assert (official == mefb).mean() < (rounded == mefb).mean()


def test_mefnet_official_batch_is_one_sequence_per_forward():
    from baselines.mef.mefnet import MEFNet

    over, under = (_as_input(x[:, :23, :31]) for x in _cfnet_pairs())
    model = MEFNet.create("small", seed=0, protocol="official")
    with _forward_batch_sizes(model.network) as sizes:
        batch = model.fuse(over, under)
    assert sizes == [1, 1]   # Trainer.eval fuses one sequence per forward pass
    singles = torch.cat([model.fuse(over[i:i + 1], under[i:i + 1]) for i in range(2)])
    assert torch.equal(batch, singles) and torch.equal(batch * 255, torch.round(batch * 255))
    # The truncation (torchvision 0.2.1 save_image) of the exact float result, sequence by sequence.
    exact = MEFNet.create("small", seed=0, protocol="exact")
    exact = torch.cat([exact.fuse(over[i:i + 1], under[i:i + 1]) for i in range(2)])
    truncated = torch.floor(exact.mul(255).clamp(0, 255)).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(_levels(batch), truncated), _mismatch(_levels(batch), truncated)


def test_mefnet_official_refuses_what_the_script_would_shrink():
    from baselines.mef.mefnet import MEFNet

    model = MEFNet.create("small", seed=0, protocol="official")
    # Both sides above 2048: the script's BatchTestResolution(2048) would return a smaller image.
    # Stride-0 views: nothing of that size is allocated unless the method computes before checking.
    big = torch.full((1, 3, 1, 1), 0.5).expand(1, 3, 2049, 2050)
    with pytest.raises(ValueError, match="2048"):
        model.fuse(big, big)
    # One side at most 2048: the script keeps the size. (The shorter side is 128, MEF-Net's LR size, so
    # that the LR input is not upsampled into a large one.)
    thin = torch.full((1, 3, 1, 1), 0.5).expand(1, 3, 128, 2049)
    assert model.fuse(thin, thin).shape == (1, 3, 128, 2049)


# -- the methods whose exact output is already the authors' ------------------------------------------

def test_u2fusion_official_is_exact():
    from baselines.mef.u2fusion import U2Fusion

    assert spec_of(U2Fusion).protocols == ("exact", "official")
    over, under = (_as_input(x[:1, :23, :31]) for x in _cfnet_pairs())
    exact = U2Fusion.create("small", seed=0).fuse(over, under)
    official = U2Fusion.create("small", seed=0, protocol="official").fuse(over, under)
    assert torch.equal(official, exact)


@pytest.mark.parametrize("module, name", [("baselines.mef.mgff", "MGFF"), ("baselines.mef.fast_spd_mef", "FastSpdMef")])
def test_classical_methods_list_both_protocols(module, name):
    cls = getattr(importlib.import_module(module), name)
    spec = spec_of(cls)
    assert spec.protocols == ("exact", "official")
    assert spec.protocol_for("official") == "official"
    official_options = spec.runtime_options(protocol="official")
    assert official_options.get("protocol") == "official"   # part of the stage cache key
    assert "protocol" not in spec.runtime_options(protocol="exact")
    over, under = (_as_input(x[:1, :23, :31]) for x in _cfnet_pairs())
    # Nothing to pass (the harness's `create` gives a classical method no runtime options): the class
    # computes its authors' output under either protocol.
    exact = spec.create(2).fuse(over, under)
    assert torch.equal(spec.create(2, **official_options).fuse(over, under), exact)
    assert exact.shape == over.shape


def test_cfanet_has_only_the_exact_protocol():
    from cfanet.network import CFANet

    spec = spec_of(CFANet)
    assert spec.protocols == ("exact",)
    assert spec.protocol_for("official") == "exact"
    assert "protocol" not in spec.runtime_options(protocol="official")
    with pytest.raises(ValueError, match="CFANet"):
        CFANet.create(2, "small", seed=0, protocol="official")
