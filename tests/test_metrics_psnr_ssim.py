"""PSNR/SSIM conventions: the SICE calibration point (algorithms.md §3.1b), independent
re-computations, what each convention promises (crop, Y channel, quantisation), and the torch
implementation's own promises: the float64 NumPy values it replaced, batches equal to single
images, strips invisible in the result, CUDA equal to CPU."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity

from cfanet.images import read_image, read_image_array
from cfanet.metrics import _torch_window
from cfanet.metrics.psnr_ssim import (CONVENTIONS, Convention, describe, get_convention, psnr, psnr_batch, ssim,
                                      ssim_batch)

SICE_SCENES = ("textmef-001", "textmef-002", "textmef-003")
LOGGED_PRECISION = 5e-5  # the CSV stores 4 decimals


def _smooth_pair(seed: int, shape=(64, 72)) -> tuple[np.ndarray, np.ndarray]:
    """A seeded smooth uint8 RGB image (H, W, 3) and a mildly degraded copy of it."""
    rng = np.random.default_rng(seed)
    ref = ndimage.gaussian_filter(rng.standard_normal(shape + (3,)), (2, 2, 0))
    ref = np.clip(128 + 60 * ref / ref.std(), 0, 255).round()
    img = np.clip(ref + rng.normal(0, 6, ref.shape), 0, 255).round()
    return img.astype(np.uint8), ref.astype(np.uint8)


def _y(rgb_u8: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr Y on the 0..255 scale, written out directly."""
    r, g, b = (rgb_u8[..., c].astype(np.float64) for c in range(3))
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


# --- calibration --------------------------------------------------------------------------------


@pytest.mark.parametrize("scene", SICE_SCENES)
def test_sice_logged_values_paper_convention(shared_data, scene):
    with open(shared_data / "sice400" / "scenes.csv", newline="") as handle:
        row = {r["scene"]: r for r in csv.DictReader(handle)}[scene]
    folder = shared_data / "sice400" / scene
    fused, gt = read_image_array(folder / "fused_TextMEF.png"), read_image_array(folder / "gt.png")
    assert abs(psnr(fused, gt, "paper") - float(row["psnr_rgb_recomputed"])) <= LOGGED_PRECISION
    assert abs(ssim(fused, gt, "paper") - float(row["ssim_rgb_recomputed"])) <= LOGGED_PRECISION
    # The float tensors read_image returns are the same 8-bit values.
    tensors = read_image(folder / "fused_TextMEF.png"), read_image(folder / "gt.png")
    assert psnr(*tensors) == psnr(fused, gt)
    assert ssim(*tensors) == ssim(fused, gt)


# --- independent re-computations ----------------------------------------------------------------


def _skimage_ssim_valid(a: np.ndarray, b: np.ndarray) -> float:
    """skimage's Gaussian SSIM map, cropped to the valid centres, averaged (channels last or 2-D)."""
    kwargs = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, full=True)
    if a.ndim == 3:
        kwargs["channel_axis"] = 2
    _, full_map = structural_similarity(a.astype(np.float64), b.astype(np.float64), **kwargs)
    return float(full_map[5:-5, 5:-5].mean())


@pytest.mark.parametrize("seed", [0, 1])
def test_paper_convention_matches_straightforward_computation(seed):
    img, ref = _smooth_pair(seed)
    mse = np.mean((img.astype(np.float64) - ref.astype(np.float64)) ** 2)
    assert psnr(img, ref, "paper") == pytest.approx(10 * np.log10(255.0**2 / mse), abs=1e-10)
    assert ssim(img, ref, "paper") == pytest.approx(_skimage_ssim_valid(img, ref), abs=1e-10)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sr_convention_matches_straightforward_computation(scale):
    img, ref = _smooth_pair(10 + scale)
    y_img, y_ref = _y(img[scale:-scale, scale:-scale]), _y(ref[scale:-scale, scale:-scale])
    mse = np.mean((y_img - y_ref) ** 2)
    assert psnr(img, ref, "sr", scale=scale) == pytest.approx(10 * np.log10(255.0**2 / mse), abs=1e-10)
    assert ssim(img, ref, "sr", scale=scale) == pytest.approx(_skimage_ssim_valid(y_img, y_ref), abs=1e-10)


# --- what the conventions promise ---------------------------------------------------------------


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_identical_images(convention):
    img, _ = _smooth_pair(2)
    assert psnr(img, img, convention, scale=2) == np.inf
    assert ssim(img, img, convention, scale=2) == 1.0


def test_sr_convention_ignores_the_cropped_border():
    scale = 4
    img, ref = _smooth_pair(3)
    edited = img.copy()
    edited[:scale, :, :] = 255 - edited[:scale, :, :]  # every pixel of the top crop band
    edited[:, -scale:, :] = 0  # and the right band
    for metric in (psnr, ssim):
        assert metric(edited, ref, "sr", scale=scale) == metric(img, ref, "sr", scale=scale)
        assert metric(edited, ref, "paper") != metric(img, ref, "paper")
    inside = img.copy()
    inside[scale, scale:-scale, :] = 255 - inside[scale, scale:-scale, :]  # first kept row
    assert psnr(inside, ref, "sr", scale=scale) != psnr(img, ref, "sr", scale=scale)


def test_sr_convention_scores_y_only():
    # (dR, dG, dB) = (15, -9, 7) leaves MATLAB's Y unchanged: 65.481*15 - 128.553*9 + 24.966*7 = 0.
    img, ref = _smooth_pair(4)
    img = np.clip(img, 20, 235)  # room for the shift
    shifted = img.astype(np.int16)
    shifted[10:40, 10:50] += np.array([15, -9, 7], dtype=np.int16)
    assert shifted.min() >= 0 and shifted.max() <= 255
    shifted = shifted.astype(np.uint8)
    assert psnr(shifted, ref, "sr", scale=2) == pytest.approx(psnr(img, ref, "sr", scale=2), abs=1e-9)
    assert ssim(shifted, ref, "sr", scale=2) == pytest.approx(ssim(img, ref, "sr", scale=2), abs=1e-12)
    assert psnr(shifted, ref, "paper") < psnr(img, ref, "paper") - 0.5


def test_float_input_is_quantised_to_8_bits():
    img, ref = _smooth_pair(5)
    as_float = torch.from_numpy(img.transpose(2, 0, 1).astype(np.float64) / 255)
    nudged = as_float + 0.49 / 255  # rounds back to the same 8-bit values
    for metric in (psnr, ssim):
        for convention in CONVENTIONS:
            expected = metric(img, ref, convention, scale=2)
            assert metric(as_float, ref, convention, scale=2) == expected
            assert metric(nudged.numpy()[None], ref[None], convention, scale=2) == expected


def test_batch_mean_and_per_image():
    pairs = [_smooth_pair(seed) for seed in (6, 7, 8)]
    imgs, refs = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    for metric in (psnr, ssim):
        single = np.array([metric(a, b, "sr", scale=2) for a, b in pairs])
        per_image = metric(imgs, refs, "sr", scale=2, reduction="none")
        assert per_image.shape == (3,)
        np.testing.assert_allclose(per_image, single, rtol=0, atol=1e-12)
        assert metric(imgs, refs, "sr", scale=2) == pytest.approx(single.mean(), abs=1e-12)
    with pytest.raises(ValueError, match="reduction"):
        psnr(imgs, refs, reduction="sum")


def test_errors_are_explicit():
    img, ref = _smooth_pair(9)
    with pytest.raises(ValueError, match=r"\(1, 3, 63, 72\)"):
        psnr(img[:-1], ref)
    with pytest.raises(ValueError, match="paper, sr"):
        get_convention("matlab")
    with pytest.raises(ValueError, match="scale"):
        ssim(img, ref, "sr", scale=0)
    with pytest.raises(ValueError, match="after a 30 px crop"):
        ssim(img, ref, "sr", scale=30)
    assert np.isfinite(psnr(img[:8, :8], ref[:8, :8]))  # PSNR needs no 11x11 window
    with pytest.raises(ValueError, match="less than 11 px"):
        ssim(img[:8, :8], ref[:8, :8])
    with pytest.raises(ValueError):
        psnr(img.transpose(2, 0, 1), ref.transpose(2, 0, 1))  # uint8 must be channel-last
    with pytest.raises(ValueError, match="crop_border"):
        Convention(name="bad", y_channel=False, crop_border=-1)


def test_conventions_describe_themselves():
    assert get_convention("paper") is CONVENTIONS["paper"]
    assert get_convention(CONVENTIONS["sr"]) is CONVENTIONS["sr"]
    assert describe("paper").startswith("paper:") and "RGB" in describe("paper") and "crop = 0" in describe("paper")
    assert describe("sr").startswith("sr:") and "rgb2ycbcr" in describe("sr") and "crop = scale" in describe("sr")
    custom = Convention(name="y-crop8", y_channel=True, crop_border=8)
    assert custom.crop_for(4) == 8 and "crop = 8 px" in custom.describe()


# --- the torch implementation against the float64 NumPy one it replaced ------------------------

# (PSNR paper, SSIM paper, PSNR sr x2, SSIM sr x2) of the SICE calibration images, computed by the
# NumPy/SciPy implementation at f61413217e9a (`benchmarks.metrics.load_baseline()`), printed with
# repr. RGB PSNR is exact in both (integer sums); the others may differ by summation order
# (measured <= 2e-15).
NUMPY_AGREEMENT = 1e-12
NUMPY_VALUES_SICE = {
    "textmef-001": (21.173074319015335, 0.935404203371193, 22.33508151314597, 0.9583567051749534),
    "textmef-002": (26.116647468003798, 0.936625918544203, 29.14623187786608, 0.9726351701007742),
    "textmef-003": (21.450653760171345, 0.8985044091642346, 23.040061494234752, 0.9313017205219453),
}


@pytest.mark.parametrize("scene", SICE_SCENES)
def test_sice_images_keep_the_numpy_values(shared_data, scene):
    folder = shared_data / "sice400" / scene
    fused, gt = read_image_array(folder / "fused_TextMEF.png"), read_image_array(folder / "gt.png")
    values = [metric(fused, gt, convention, scale=2) for convention in ("paper", "sr") for metric in (psnr, ssim)]
    np.testing.assert_allclose(values, NUMPY_VALUES_SICE[scene], rtol=0, atol=NUMPY_AGREEMENT)
    assert values[0] == NUMPY_VALUES_SICE[scene][0]  # exact MSE, same log10


# --- batches -------------------------------------------------------------------------------------


def _as_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> uint8 tensor (..., 3, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(images, -1, -3)))


@pytest.mark.parametrize(("convention", "scale"), [("paper", 1), ("sr", 2), ("sr", 4)])
def test_batch_equals_per_image(convention, scale):
    pairs = [_smooth_pair(seed, shape=(70, 83)) for seed in (20, 21, 22)]
    imgs, refs = _as_tensor(np.stack([p[0] for p in pairs])), _as_tensor(np.stack([p[1] for p in pairs]))
    for batch, single in ((psnr_batch, psnr), (ssim_batch, ssim)):
        values = batch(imgs, refs, convention, scale)
        assert values.shape == (3,) and values.dtype == torch.float64
        expected = [single(img, ref, convention, scale=scale) for img, ref in pairs]
        np.testing.assert_allclose(values.numpy(), expected, rtol=0, atol=1e-13)
        # 8-bit values in a float tensor are the same images.
        assert torch.equal(batch(imgs.double(), refs.float(), convention, scale), values)
    assert torch.equal(psnr_batch(imgs, imgs), torch.full((3,), math.inf, dtype=torch.float64))
    assert torch.equal(ssim_batch(imgs, imgs), torch.ones(3, dtype=torch.float64))


def test_batch_input_convention_is_enforced():
    img, ref = (_as_tensor(x)[None] for x in _smooth_pair(23))
    for batch in (psnr_batch, ssim_batch):
        with pytest.raises(ValueError, match="0..255"):
            batch(img / 255.0, ref / 255.0)  # [0, 1] floats
        with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
            batch(img[0], ref[0])
        with pytest.raises(ValueError, match="does not match"):
            batch(img, ref[..., :-1])
        with pytest.raises(TypeError, match="tensor"):
            batch(img.numpy(), ref)
        with pytest.raises(ValueError, match="paper, sr"):
            batch(img, ref, "matlab")
        with pytest.raises(ValueError, match="0..255"):
            batch(img.double() * 1.01, ref)


def test_strips_do_not_change_the_result(monkeypatch):
    img, ref = _smooth_pair(24, shape=(125, 96))
    monkeypatch.setattr(_torch_window, "_CPU_STRIP_ELEMENTS", 10**9)  # one strip
    whole = [ssim(img, ref, "paper"), ssim(img, ref, "sr", scale=3)]
    psnr_whole = psnr(img, ref, "sr", scale=3)
    monkeypatch.setattr(_torch_window, "_CPU_STRIP_ELEMENTS", 1)  # strips of 8 rows
    monkeypatch.setattr(_torch_window, "_MIN_ROWS", 8)
    np.testing.assert_allclose([ssim(img, ref, "paper"), ssim(img, ref, "sr", scale=3)], whole, rtol=0, atol=1e-15)
    assert psnr(img, ref, "sr", scale=3) == pytest.approx(psnr_whole, abs=1e-12)
    assert ssim(img, ref, "paper") == pytest.approx(_skimage_ssim_valid(img, ref), abs=1e-10)


# --- CUDA -----------------------------------------------------------------------------------------

CUDA_AGREEMENT = 1e-10  # float64 on both; CUDA differs in summation order and FMA contraction


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(("convention", "scale"), [("paper", 1), ("sr", 4)])
def test_cuda_equals_cpu(convention, scale):
    pairs = [_smooth_pair(seed, shape=(150, 170)) for seed in (30, 31)]
    imgs, refs = _as_tensor(np.stack([p[0] for p in pairs])), _as_tensor(np.stack([p[1] for p in pairs]))
    for batch in (psnr_batch, ssim_batch):
        cuda = batch(imgs.cuda(), refs.cuda(), convention, scale)
        assert cuda.device.type == "cuda"
        np.testing.assert_allclose(cuda.cpu().numpy(), batch(imgs, refs, convention, scale).numpy(), rtol=0,
                                   atol=CUDA_AGREEMENT)
    as_float = torch.from_numpy(pairs[0][0].transpose(2, 0, 1).astype(np.float32) / 255).cuda()
    assert abs(ssim(as_float, pairs[0][1], convention, scale=scale)
               - ssim(*pairs[0], convention, scale=scale)) <= CUDA_AGREEMENT
