"""MEF-SSIM: calibration against MEFB's stored MATLAB values, a literal transcription of the
MATLAB loops, and the laws the metric obeys (algorithms.md §2)."""

from __future__ import annotations

import csv
import functools
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from cfanet.color import rgb2gray
from cfanet.images import read_image, read_image_array
from cfanet.metrics.mef_ssim import downsample, mef_ms_ssim, mef_ssim_map, mef_ssim_single, to_mef_gray

MEFB_SCENES = (
    "Candle", "TableLamp", "Memorial", "House", "Kluki", "Lamp", "Landscape", "Church",
    "507", "AirBellowsGap", "ArtistPalette", "Knossos6", "Lake1", "Museum1", "Sky", "TestChart1",
)  # fmt: skip
MEFB_METHODS = ("MGFF", "FMMEF", "MEFNet", "U2Fusion")
STORED_PRECISION = 5e-6  # MEFB wrote its values with 5 decimals


def _file(folder: Path, stem: str) -> Path:
    (path,) = [p for p in folder.iterdir() if p.stem == stem]  # .png or .tif
    return path


@functools.lru_cache(maxsize=4)
def _mefb_sources(scene_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    return read_image_array(_file(scene_dir, "over")), read_image_array(_file(scene_dir, "under"))


def _mefb_stored(root: Path) -> dict[str, dict[str, str]]:
    with open(root / "mefb" / "scenes.csv", newline="") as handle:
        return {row["scene"]: row for row in csv.DictReader(handle)}


def _smooth_image(rng: np.random.Generator, shape: tuple[int, int], sigma: float = 3.0) -> np.ndarray:
    """Seeded smooth uint8 RGB (H, W, 3) spanning most of 0..255."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape + (3,)), (sigma, sigma, 0))
    return np.clip(128 + 127 * noise / (3 * noise.std()), 0, 255).round().astype(np.uint8)


# --- calibration against MEFB -------------------------------------------------------------------


def test_mefb_scene_list_matches_csv(shared_data):
    assert set(_mefb_stored(shared_data)) == set(MEFB_SCENES)


@pytest.mark.parametrize("method", MEFB_METHODS)
@pytest.mark.parametrize("scene", MEFB_SCENES)
def test_mefb_stored_value(shared_data, scene, method):
    stored = float(_mefb_stored(shared_data)[scene][f"mefssim_{method}"])
    scene_dir = shared_data / "mefb" / scene
    fused = read_image_array(_file(scene_dir, f"fused_{method}"))
    ours = mef_ms_ssim(_mefb_sources(scene_dir), fused).score
    assert abs(ours - stored) <= STORED_PRECISION, f"{scene}/{method}: ours {ours:.7f}, MEFB {stored}"


def test_house_mgff_per_scale(shared_data):
    scene_dir = shared_data / "mefb" / "House"
    result = mef_ms_ssim(_mefb_sources(scene_dir), read_image_array(_file(scene_dir, "fused_MGFF")))
    # algorithms.md §2.3, printed with 6 decimals.
    np.testing.assert_allclose(result.per_scale, [0.973276, 0.967770, 0.959415], rtol=0, atol=5e-7)
    assert abs(result.score - 0.964173) <= 5e-7


def test_house_mistakes_are_caught_by_the_calibration_tolerance(shared_data):
    """BGR order and unrounded gray both move the score further than the calibration allows."""
    scene_dir = shared_data / "mefb" / "House"
    sources = _mefb_sources(scene_dir)
    fused = read_image_array(_file(scene_dir, "fused_MGFF"))
    stored = float(_mefb_stored(shared_data)["House"]["mefssim_MGFF"])
    bgr = mef_ms_ssim([s[:, :, ::-1] for s in sources], fused[:, :, ::-1]).score
    def unrounded_gray(image):
        return rgb2gray(np.moveaxis(image, 2, 0).astype(np.float64))

    unrounded = mef_ms_ssim([unrounded_gray(s) for s in sources], unrounded_gray(fused)).score
    assert abs(bgr - stored) > 2 * STORED_PRECISION  # 0.963704 per §2.4
    assert abs(unrounded - stored) > 2 * STORED_PRECISION  # 0.964249 per §2.4


# --- the vectorised formulation against MATLAB's loops ------------------------------------------


def _mef_ssim_loops(seq: np.ndarray, fused: np.ndarray) -> np.ndarray:
    """Line-by-line transcription of the official `mef_ssim.m` (K = 0.03, Gaussian window).

    seq is (H, W, K) and fused (H, W), float64 on 0..255; returns the quality map qMap.
    """
    eps = np.finfo(np.float64).eps
    g1 = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    window = np.outer(g1, g1)
    window /= window.sum()
    s1, s2, s3 = seq.shape
    bd, w_size = 5, 11
    out_h, out_w = s1 - 2 * bd, s2 - 2 * bd
    mu = np.zeros((out_h, out_w, s3))
    ed = np.zeros((out_h, out_w, s3))
    for i in range(out_h):
        for j in range(out_w):
            for k in range(s3):
                patch = seq[i : i + w_size, j : j + w_size, k]
                mu[i, j, k] = patch.mean()
                sigma_sq = (patch * patch).mean() - mu[i, j, k] ** 2
                ed[i, j, k] = np.sqrt(max(w_size**2 * sigma_sq, 0)) + 0.001
    R = np.zeros((out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            vecs = seq[i : i + w_size, j : j + w_size, :].reshape(-1, s3)
            denominator = sum(np.linalg.norm(vecs[:, k] - vecs[:, k].mean()) for k in range(s3))
            total = vecs.sum(axis=1)
            numerator = np.linalg.norm(total - total.mean())
            R[i, j] = (numerator + eps) / (denominator + eps)
    R[R > 1] = 1 - eps
    R[R < 0] = 0 + eps
    p = np.tan(np.pi / 2 * R)
    p[p > 10] = 10
    w_map = (ed / w_size) ** p[:, :, None] + eps
    w_map /= w_map.sum(axis=2, keepdims=True)
    max_ed = ed.max(axis=2)
    C = (0.03 * 255) ** 2
    q_map = np.zeros((out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            blocks = seq[i : i + w_size, j : j + w_size, :]
            r_block = np.zeros((w_size, w_size))
            for k in range(s3):
                r_block += w_map[i, j, k] * (blocks[:, :, k] - mu[i, j, k]) / ed[i, j, k]
            norm = np.linalg.norm(r_block)
            if norm > 0:
                r_block = r_block / norm * max_ed[i, j]
            f_block = fused[i : i + w_size, j : j + w_size]
            mu1, mu2 = (window * r_block).sum(), (window * f_block).sum()
            sigma1_sq = (window * (r_block - mu1) ** 2).sum()
            sigma2_sq = (window * (f_block - mu2) ** 2).sum()
            sigma12 = (window * (r_block - mu1) * (f_block - mu2)).sum()
            q_map[i, j] = (2 * sigma12 + C) / (sigma1_sq + sigma2_sq + C)
    return q_map


@pytest.mark.parametrize("k_count", [2, 3])
def test_map_matches_matlab_loops(k_count):
    rng = np.random.default_rng(k_count)
    base = _smooth_image(rng, (26, 31), sigma=2.0)[:, :, 0].astype(np.float64)
    sources = [np.clip(base * gain + offset, 0, 255).round() for gain, offset in [(1.6, 40), (0.5, -10), (1.0, 0)]]
    sources = np.stack(sources[:k_count])
    sources[0, :8, :12] = 255.0  # a saturated flat corner: zero-variance patches in one source
    sources[1, -9:, -14:] = 0.0
    fused = np.clip(sources.mean(axis=0) + rng.normal(0, 4, base.shape), 0, 255).round()
    fused[:6, :6] = 200.0
    ours = mef_ssim_map(sources, fused)
    reference = _mef_ssim_loops(np.moveaxis(sources, 0, -1), fused)
    assert ours.shape == reference.shape == (16, 21)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-10)


def test_downsample_is_top_left_2x2_mean_with_mirrored_odd_edge():
    image = np.arange(5 * 7, dtype=np.float64).reshape(5, 7) ** 1.5
    padded = np.pad(image, ((0, 1), (0, 1)), mode="symmetric")
    expected = np.array([[padded[2 * i : 2 * i + 2, 2 * j : 2 * j + 2].mean() for j in range(4)] for i in range(3)])
    np.testing.assert_allclose(downsample(image), expected, rtol=0, atol=1e-12)


# --- laws ----------------------------------------------------------------------------------------


def test_score_does_not_depend_on_source_order():
    rng = np.random.default_rng(0)
    base = _smooth_image(rng, (80, 96))
    sources = [np.clip(base * g, 0, 255).astype(np.uint8) for g in (0.4, 1.0, 1.9)]
    fused = _smooth_image(rng, (80, 96), sigma=1.0) // 4 + base // 2 + 20
    scores = [mef_ms_ssim(list(order), fused).score for order in itertools.permutations(sources)]
    assert np.ptp(scores) < 1e-12
    assert 0 < scores[0] < 0.999  # a real, non-trivial value


def test_identical_sources_fused_equal_gives_one():
    # The desired patch is (x - mu) * (1 + 0.001 / ||x - mu||), so q = 1 - O((0.001 / ||x - mu||)^2):
    # about 1e-11 for this strongly textured image, not exactly 1.
    image = np.random.default_rng(1).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    result = mef_ms_ssim([image, image, image], image)
    assert abs(result.score - 1.0) < 1e-10
    assert all(abs(q - 1.0) < 1e-10 for q in result.per_scale)


def test_fused_unlike_sources_scores_lower():
    rng = np.random.default_rng(2)
    sources = [_smooth_image(rng, (64, 64)), _smooth_image(rng, (64, 64))]
    good = mef_ms_ssim(sources, sources[0]).score
    bad = mef_ms_ssim(sources, _smooth_image(rng, (64, 64))).score
    assert bad < good < 1


def test_accepted_input_forms_agree():
    rng = np.random.default_rng(3)
    base = _smooth_image(rng, (48, 60)).astype(np.float64)
    arrays = [np.clip(base * gain, 0, 255).astype(np.uint8) for gain in (0.5, 1.7, 1.0)]
    as_uint8 = mef_ms_ssim(arrays[:2], arrays[2]).score
    assert 0.5 < as_uint8 < 1
    tensors = [torch.from_numpy(a.transpose(2, 0, 1).astype(np.float32) / 255)[None] for a in arrays]
    assert mef_ms_ssim(tensors[:2], tensors[2]).score == as_uint8
    assert mef_ms_ssim(torch.cat(tensors[:2]), tensors[2][0].numpy()).score == as_uint8
    grays = [to_mef_gray(a) for a in arrays]
    assert mef_ms_ssim(np.stack(grays[:2]), grays[2]).score == as_uint8
    assert grays[0].dtype == np.float64 and grays[0].shape == (48, 60)


def test_float_input_is_quantised_like_an_8bit_save(tmp_path):
    from cfanet.images import write_image

    rng = np.random.default_rng(4)
    sources = [torch.from_numpy(rng.random((1, 3, 50, 50), dtype=np.float32)) for _ in range(2)]
    images = sources + [(sources[0] + sources[1]) / 2]
    paths = [write_image(tmp_path / f"{i}.png", im) for i, im in enumerate(images)]
    saved = [read_image(p) for p in paths]
    score = mef_ms_ssim(images[:2], images[2]).score
    assert score == mef_ms_ssim(saved[:2], saved[2]).score
    assert 0.5 < score < 1


def test_shape_mismatch_raises():
    a = np.zeros((50, 60, 3), np.uint8)
    b = np.zeros((50, 61, 3), np.uint8)
    with pytest.raises(ValueError, match=r"\(50, 61\)"):
        mef_ms_ssim([a, a], b)
    with pytest.raises(ValueError, match="differ in size"):
        mef_ms_ssim([a, b], a)
    with pytest.raises(ValueError, match="at least 2"):
        mef_ms_ssim([a], a)
    with pytest.raises(ValueError):
        mef_ssim_single(np.zeros((2, 50, 60)), np.zeros((50, 59)))


def test_unsupported_forms_raise():
    with pytest.raises(ValueError):
        to_mef_gray(np.zeros((3, 50, 50), np.uint8))  # uint8 must be channel-last
    with pytest.raises(TypeError):
        to_mef_gray(np.zeros((50, 50, 3), np.uint16))


def test_too_small_gives_minus_inf_as_matlab():
    rng = np.random.default_rng(5)
    for shape, finite in [((43, 80), False), ((80, 43), False), ((44, 44), True)]:
        images = [_smooth_image(rng, shape) for _ in range(3)]
        result = mef_ms_ssim(images[:2], images[2])
        assert np.isfinite(result.score) == finite
        if not finite:
            assert result.score == -np.inf and result.per_scale == ()
