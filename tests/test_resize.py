"""Tests for cfanet.resize (MATLAB-compatible bicubic imresize, modcrop, LR making).

Reference: tests/fixtures/imresize_octave.npz, made outside the test run by GNU Octave 7.3.0 with
the image package 2.14.0 (`imresize(I, s, 'bicubic')`, s = 1/2, 1/3, 1/4, 2) on three uint8
images: a 10x10 gray ramp, 37x53 RGB seeded noise and a 96x80 crop of skimage's astronaut.
See tests/fixtures/README.md for how to regenerate it.

What is compared, and why the uint8 comparison is split in two:
- the float path against Octave's double output (`imresize(double(I) / 255, s)`), to 1e-12
  (1e-6 where the fixture stores float32);
- Octave's uint8 path computes in single precision and rounds once at the end; ours with
  `rounding="once"` must agree within one level;
- MATLAB rounds and saturates to uint8 after each axis pass (verified bit for bit against real
  MATLAB output, see the optional tests at the bottom), so the default `rounding="per_pass"` must
  agree with Octave within one level everywhere except at output pixels that read a first-pass
  value MATLAB had to clip to [0, 255].

Optional cross-checks, skipped unless the files exist on this machine (paths via environment):
- CFANET_BASICSR_MATLAB_FUNCTIONS: BasicSR's basicsr/utils/matlab_functions.py (its float32
  torch port), loaded from its file; the package is never imported.
- CFANET_MATLAB_IMRESIZE_REPO: a checkout of fatheral/matlab_imresize, whose test/ folder holds
  MATLAB R2015b outputs (lena 512x512 -> 123x234, uint8 and double).
Real MATLAB output that is always checked when ../shared/data is present: CF-Net's shipped LR
files of the `lake` scene (cfnet-sample/train_data), made by its MATLAB Prepare_Data_HR_LR.m,
are reproduced bit for bit.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from cfanet.images import quantize, read_image_array
from cfanet.resize import contributions, imresize, imresize_uint8, make_lr, make_lr_pair, modcrop

FIXTURE = Path(__file__).parent / "fixtures" / "imresize_octave.npz"


def _load_fixture() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return {key: data[key] for key in data.files}


REF = _load_fixture()
CASES = [
    (str(name), k, float(scale), str(label))
    for name in REF["names"]
    for k, (scale, label) in enumerate(zip(REF["scales"], REF["scale_labels"]), start=1)
]
CASE_IDS = [f"{name}-x{label}" for name, _, _, label in CASES]


def _levels_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    assert a.shape == b.shape, (a.shape, b.shape)
    return np.abs(a.astype(np.int64) - b.astype(np.int64))


def _reads_clipped_first_pass(image: np.ndarray, scale: float) -> np.ndarray:
    """Output pixels whose column pass reads a row-pass value outside [0, 255] after rounding.

    `image` is uint8 (H, W[, C]); with equal scales MATLAB resizes rows first. Returns a bool
    mask shaped like the output.
    """
    x = image.astype(np.float64)
    h, w = x.shape[:2]
    row_idx, row_w = contributions(h, math.ceil(h * scale), scale)
    col_idx, _ = contributions(w, math.ceil(w * scale), scale)
    rows = np.einsum("op,op...->o...", row_w.numpy(), x[row_idx.numpy()])
    clipped = (rows < -0.5) | (rows >= 255.5)
    return clipped[:, col_idx.numpy()].any(axis=2)


def test_fixture_names_its_oracle():
    assert str(REF["oracle"]).startswith("GNU Octave")
    assert set(REF["scale_labels"]) == {"1/2", "1/3", "1/4", "2"}


@pytest.mark.parametrize("name,k,scale,label", CASES, ids=CASE_IDS)
def test_float_path_matches_octave_double(name, k, scale, label):
    key = f"{name}__s{k}_double"
    if key not in REF:
        pytest.skip("double output not stored for this case (size budget)")
    expected = REF[key]
    ours = imresize(REF[f"{name}__input"].astype(np.float64) / 255, scale=scale)
    tolerance = 1e-12 if expected.dtype == np.float64 else 1e-6
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected.astype(np.float64), rtol=0, atol=tolerance)


@pytest.mark.parametrize("name,k,scale,label", CASES, ids=CASE_IDS)
def test_uint8_round_once_matches_octave_uint8(name, k, scale, label):
    ours = imresize_uint8(REF[f"{name}__input"], scale=scale, rounding="once")
    diff = _levels_diff(ours, REF[f"{name}__s{k}_uint8"])
    assert diff.max() <= 1
    assert (diff == 0).mean() >= 0.99  # Octave rounds single-precision sums: rare ties may flip


@pytest.mark.parametrize("name,k,scale,label", CASES, ids=CASE_IDS)
def test_uint8_matlab_path_matches_octave_within_one_level(name, k, scale, label):
    image = REF[f"{name}__input"]
    ours = imresize_uint8(image, scale=scale)
    diff = _levels_diff(ours, REF[f"{name}__s{k}_uint8"])
    clipped = _reads_clipped_first_pass(image, scale)
    assert diff[~clipped].max() <= 1
    assert (diff == 0).mean() >= 0.6  # a systematic offset (e.g. wrong rounding) would fail this
    if not clipped.any():
        assert diff.max() <= 1


def test_clipping_between_passes_is_what_separates_matlab_from_octave():
    """On saturated noise the MATLAB path must differ from Octave by more than one level."""
    name, k = "noise37x53", 4  # x2 upscale: strong overshoot
    image = REF[f"{name}__input"]
    diff = _levels_diff(imresize_uint8(image, scale=2.0), REF[f"{name}__s{k}_uint8"])
    assert diff.max() > 1
    assert _reads_clipped_first_pass(image, 2.0)[diff > 1].all()


@pytest.mark.parametrize(
    "shape,scale,expected",
    [
        ((37, 53), 1 / 2, (19, 27)),
        ((37, 53), 1 / 3, (13, 18)),
        ((37, 53), 1 / 4, (10, 14)),
        ((37, 53), 2.0, (74, 106)),
        ((96, 80), 1 / 3, (32, 27)),
        ((5, 7), 0.3, (2, 3)),
        ((37, 53), (0.5, 0.25), (19, 14)),
    ],
)
def test_output_size_is_ceil_of_scale_times_size(shape, scale, expected):
    x = torch.rand(2, 3, *shape)
    assert imresize(x, scale=scale).shape == (2, 3, *expected)
    assert imresize_uint8(np.zeros((*shape, 3), np.uint8), scale=scale).shape == (*expected, 3)


def test_explicit_output_size():
    x = torch.rand(1, 3, 37, 53)
    assert imresize(x, size=(11, 40)).shape == (1, 3, 11, 40)
    # The scale of each axis is out / in: 20 -> 10 and 40 -> 10 are scales 1/2 and 1/4.
    y = torch.rand(1, 3, 20, 40, dtype=torch.float64)
    torch.testing.assert_close(imresize(y, size=(10, 10)), imresize(y, scale=(0.5, 0.25)), rtol=0, atol=0)
    with pytest.raises(ValueError):
        imresize(x, scale=0.5, size=(10, 10))
    with pytest.raises(ValueError):
        imresize(x)


def test_scale_one_is_identity():
    x = torch.rand(1, 3, 13, 17, dtype=torch.float64)
    assert torch.equal(imresize(x, scale=1.0), x)
    u = (torch.rand(3, 13, 17) * 255).to(torch.uint8)
    assert torch.equal(imresize_uint8(u, scale=1), u)
    assert torch.equal(imresize(x, size=(13, 17)), x)


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 0.3, 2.0, 1.7])
@pytest.mark.parametrize("antialias", [True, False])
def test_constant_image_stays_constant(scale, antialias):
    x = torch.full((1, 3, 23, 31), 0.37, dtype=torch.float64)
    y = imresize(x, scale=scale, antialias=antialias)
    torch.testing.assert_close(y, torch.full_like(y, 0.37), rtol=0, atol=1e-13)
    u = np.full((23, 31, 3), 137, np.uint8)
    assert (imresize_uint8(u, scale=scale, antialias=antialias) == 137).all()


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 0.3, 2.0])
def test_taps_sum_to_one_and_stay_inside_the_image(scale):
    indices, weights = contributions(11, math.ceil(11 * scale), scale)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(weights.shape[0], dtype=torch.float64))
    assert indices.min() >= 0 and indices.max() <= 10
    assert weights.dtype == torch.float64 and indices.dtype == torch.int64


def test_antialias_stretches_the_kernel():
    # 1/2 with antialiasing: kernel width 4 / (1/2) = 8 taps; without: the plain 4-tap cubic.
    assert contributions(20, 10, 0.5, antialias=True)[1].shape == (10, 8)
    assert contributions(20, 10, 0.5, antialias=False)[1].shape == (10, 4)
    # Symmetric reflection at the left border: output 0 of 1/2 reaches input -3 -> 2.
    indices, _ = contributions(20, 10, 0.5)
    assert indices[0].tolist() == [2, 1, 0, 0, 1, 2, 3, 4]


def test_smaller_scale_axis_is_resized_first():
    """MATLAB sorts the axes by scale, so transposing commutes with resizing (unequal scales)."""
    u = np.random.default_rng(3).integers(0, 256, size=(29, 41), dtype=np.uint8)
    wide = imresize_uint8(u, scale=(0.5, 0.25))
    tall = imresize_uint8(np.ascontiguousarray(u.T), scale=(0.25, 0.5))
    np.testing.assert_array_equal(wide, tall.T)


def test_torch_and_numpy_paths_agree_and_keep_types():
    rng = np.random.default_rng(7)
    hwc = rng.random((21, 34, 3))
    chw = torch.from_numpy(hwc.transpose(2, 0, 1).copy())
    from_numpy = imresize(hwc, scale=1 / 3)
    from_torch = imresize(chw[None], scale=1 / 3)
    assert isinstance(from_numpy, np.ndarray) and from_numpy.dtype == np.float64
    assert from_torch.shape == (1, 3, 7, 12) and from_torch.dtype == torch.float64
    np.testing.assert_array_equal(from_numpy, from_torch[0].numpy().transpose(1, 2, 0))
    assert imresize(chw.float(), scale=0.5).dtype == torch.float32
    assert imresize(hwc[:, :, 0], scale=0.5).shape == (11, 17)

    u = (hwc * 255).astype(np.uint8)
    u8_numpy = imresize_uint8(u, scale=0.5)
    u8_torch = imresize_uint8(torch.from_numpy(u).permute(2, 0, 1), scale=0.5)
    assert u8_numpy.dtype == np.uint8 and u8_torch.dtype == torch.uint8
    np.testing.assert_array_equal(u8_numpy, u8_torch.permute(1, 2, 0).numpy())


def test_wrong_dtypes_are_refused():
    with pytest.raises(TypeError):
        imresize(np.zeros((8, 8), np.uint8), scale=0.5)
    with pytest.raises(TypeError):
        imresize_uint8(np.zeros((8, 8), np.float32), scale=0.5)
    with pytest.raises(ValueError):
        imresize_uint8(np.zeros((8, 8), np.uint8), scale=0.5, rounding="nearest")


def test_modcrop_keeps_the_top_left_corner():
    x = torch.arange(2 * 3 * 10 * 11).reshape(2, 3, 10, 11)
    cropped = modcrop(x, 4)
    assert cropped.shape == (2, 3, 8, 8)
    assert torch.equal(cropped, x[..., :8, :8])
    hwc = np.arange(10 * 11 * 3).reshape(10, 11, 3)
    assert modcrop(hwc, 3).shape == (9, 9, 3)
    np.testing.assert_array_equal(modcrop(hwc, 3), hwc[:9, :9])
    assert modcrop(hwc[:, :, 0], 2).shape == (10, 10)
    assert modcrop(x, 1).shape == x.shape
    with pytest.raises(ValueError):
        modcrop(x, 0)


@pytest.mark.parametrize("scale,hr_size,lr_size", [(2, (36, 52), (18, 26)), (4, (36, 52), (9, 13))])
def test_make_lr_pair_sizes_and_values(scale, hr_size, lr_size):
    hr = torch.rand(2, 3, 37, 53)
    hr_cropped, lr = make_lr_pair(hr, scale)
    assert hr_cropped.shape == (2, 3, *hr_size) and lr.shape == (2, 3, *lr_size)
    assert hr_cropped.dtype == lr.dtype == torch.float32
    levels = quantize(hr, 8)[..., : hr_size[0], : hr_size[1]]
    np.testing.assert_array_equal(hr_cropped.numpy(), levels.astype(np.float32) / 255)
    expected = imresize_uint8(torch.from_numpy(levels), scale=1 / scale)
    np.testing.assert_array_equal(lr.numpy(), expected.numpy().astype(np.float32) / 255)
    assert torch.equal(make_lr(hr, scale), lr)


# ---- optional cross-checks against files that are usually not on this machine ----


def _env_path(variable: str, *parts: str) -> Path:
    root = os.environ.get(variable)
    path = Path(root, *parts) if root else None
    if path is None or not path.exists():
        pytest.skip(f"set {variable} to run this cross-check")
    return path


@pytest.mark.parametrize("name,k,scale,label", CASES, ids=CASE_IDS)
def test_optional_basicsr_port_agrees_in_float32(name, k, scale, label):
    path = _env_path("CFANET_BASICSR_MATLAB_FUNCTIONS")
    spec = importlib.util.spec_from_file_location("basicsr_matlab_functions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    image = REF[f"{name}__input"].astype(np.float64) / 255
    theirs = module.imresize(image, scale)  # float32 arithmetic
    np.testing.assert_allclose(imresize(image, scale=scale), theirs, rtol=0, atol=1e-6)


def test_optional_real_matlab_r2015b_output_is_matched_exactly():
    folder = _env_path("CFANET_MATLAB_IMRESIZE_REPO", "test")
    source = read_image_array(folder / "lena_512x512.png")
    matlab_uint8 = read_image_array(folder / "lena_123x234_uint8.png")
    matlab_double = read_image_array(folder / "lena_123x234_double.png")  # imwrite of double
    np.testing.assert_array_equal(imresize_uint8(source, size=(123, 234)), matlab_uint8)
    ours_double = imresize(source.astype(np.float64) / 255, size=(123, 234))
    np.testing.assert_array_equal(quantize(ours_double, 8), matlab_double)


@pytest.mark.parametrize("exposure", ["under", "over"])
def test_real_matlab_output_cfnet_lr_files_are_matched_exactly(shared_data, exposure):
    """CF-Net's shipped LR files were made by MATLAB (its Prepare_Data_HR_LR.m): real MATLAB output.

    Their LR is imresize(modcrop(HR, 4), 1/4, 'bicubic') on uint8, cropped top-left to the stored
    208x372; ours must equal it bit for bit.
    """
    folder = shared_data / "cfnet-sample" / "train_data"
    hr = read_image_array(folder / f"hr_{exposure}" / "lake.png")
    lr = read_image_array(folder / f"lr_{exposure}" / "lake.png")
    ours = imresize_uint8(modcrop(hr, 4), scale=1 / 4)[: lr.shape[0], : lr.shape[1]]
    np.testing.assert_array_equal(ours, lr)
    # rounding once at the end (Octave's and BasicSR's convention) is measurably not MATLAB
    once = imresize_uint8(modcrop(hr, 4), scale=1 / 4, rounding="once")[: lr.shape[0], : lr.shape[1]]
    assert np.any(once != lr)
