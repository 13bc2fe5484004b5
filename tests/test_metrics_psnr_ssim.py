"""PSNR/SSIM conventions: the SICE calibration point (algorithms.md §3.1b), independent
re-computations, and what each convention promises (crop, Y channel, quantisation)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity

from cfanet.images import read_image, read_image_array
from cfanet.metrics.psnr_ssim import CONVENTIONS, Convention, describe, get_convention, psnr, ssim

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
