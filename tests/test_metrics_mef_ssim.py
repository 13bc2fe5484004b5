"""MEF-SSIM: calibration against MEFB's stored MATLAB values, a literal transcription of the
MATLAB loops, the laws the metric obeys (algorithms.md §2), and the torch implementation's own
promises: the values of the float64 NumPy implementation it replaced, batches equal to single
images, strips invisible in the result, exact box sums, CUDA equal to CPU."""

from __future__ import annotations

import csv
import functools
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage, signal

from cfanet.color import rgb2gray
from cfanet.images import read_image, read_image_array
from cfanet.metrics import _torch_window
from cfanet.metrics._torch_window import box_sum_valid, gaussian_valid
from cfanet.metrics._window import GAUSSIAN_TAPS
from cfanet.metrics.mef_ssim import (downsample, mef_ms_ssim, mef_ms_ssim_batch, mef_ssim_map, mef_ssim_scales_batch,
                                     mef_ssim_single, to_mef_gray)

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


# --- the torch implementation against the float64 NumPy one it replaced ------------------------

# Per-scale Q and score computed by the NumPy/SciPy implementation at f61413217e9a (the commit
# before the move to torch), loaded with `benchmarks.metrics.load_baseline()`, printed with repr.
# The torch code sums in a different order (and computes (ed/n)^p as exp(p log(ed/n))), so the
# values may differ by rounding: measured <= 3e-15; any real change of the formulas moves them by
# far more than the bound.
NUMPY_AGREEMENT = 1e-12
NUMPY_VALUES = {
    "smooth, 2 sources": ((0.8210769080518742, 0.8942011014226756, 0.9312221029399237), 0.9061252386383314),
    "odd size, 3 sources": ((0.8550460979497533, 0.9155124175690927, 0.9345770611494285), 0.9200598379185702),
    "saturated, 2 sources": ((0.498387683119126, 0.4942285199719366, 0.5152106030653264), 0.5044068989825051),
    "noise, 2 sources": ((0.9289158530504316, 0.930147960789085, 0.9548213735873917), 0.9417225603628007),
}
NUMPY_VALUES_MEFB = {
    ("House", "MGFF"): ((0.9732757101343011, 0.9677695609394829, 0.95941497941777), 0.9641725851095314),
    ("Kluki", "FMMEF"): ((0.9898303780438317, 0.9851282730814925, 0.97488983112976), 0.9805734408717219),
    ("507", "MEFNet"): ((0.9186445044673457, 0.8641664661047977, 0.7920507788576971), 0.8326664589201024),
}


def _exposures(seed: int, shape: tuple[int, int], gains: tuple[float, ...]) -> tuple[list[np.ndarray], np.ndarray]:
    """Seeded exposures of one smooth scene (uint8 RGB (H, W, 3)) and a noisy 'fused' image."""
    rng = np.random.default_rng(seed)
    base = _smooth_image(rng, shape).astype(np.float64)
    sources = [np.clip(base * gain, 0, 255).round().astype(np.uint8) for gain in gains]
    fused = np.clip(base * 1.1 + rng.normal(0, 6, base.shape), 0, 255).round().astype(np.uint8)
    return sources, fused


def _noise(seed: int, shape: tuple[int, int], k_count: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Uniform-noise sources (every patch textured) and their rounded mean as the fused image."""
    rng = np.random.default_rng(seed)
    sources = [rng.integers(0, 256, shape + (3,), dtype=np.uint8) for _ in range(k_count)]
    return sources, np.mean(sources, axis=0).round().astype(np.uint8)


CASES = {
    "smooth, 2 sources": lambda: _exposures(21, (96, 128), (0.45, 1.7)),
    "odd size, 3 sources": lambda: _exposures(22, (77, 91), (0.3, 1.0, 2.2)),
    "saturated, 2 sources": lambda: _exposures(23, (100, 120), (0.15, 3.0)),  # flat 0 and 255 areas
    "noise, 2 sources": lambda: _noise(24, (64, 80), 2),
}


def _as_batch(cases: list[tuple[list[np.ndarray], np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    """[(sources, fused)] of one size -> uint8 tensors (N, K, 3, H, W) and (N, 3, H, W)."""
    sources = np.stack([np.stack(s) for s, _ in cases])
    fused = np.stack([f for _, f in cases])
    return (torch.from_numpy(np.ascontiguousarray(np.moveaxis(sources, -1, -3))),
            torch.from_numpy(np.ascontiguousarray(np.moveaxis(fused, -1, -3))))


@pytest.mark.parametrize("name", sorted(CASES))
def test_random_images_keep_the_numpy_values(name):
    sources, fused = CASES[name]()
    result = mef_ms_ssim(sources, fused)
    per_scale, score = NUMPY_VALUES[name]
    np.testing.assert_allclose(result.per_scale, per_scale, rtol=0, atol=NUMPY_AGREEMENT)
    assert abs(result.score - score) <= NUMPY_AGREEMENT


@pytest.mark.parametrize(("scene", "method"), sorted(NUMPY_VALUES_MEFB))
def test_mefb_images_keep_the_numpy_values(shared_data, scene, method):
    scene_dir = shared_data / "mefb" / scene
    result = mef_ms_ssim(_mefb_sources(scene_dir), read_image_array(_file(scene_dir, f"fused_{method}")))
    per_scale, score = NUMPY_VALUES_MEFB[scene, method]
    np.testing.assert_allclose(result.per_scale, per_scale, rtol=0, atol=NUMPY_AGREEMENT)
    assert abs(result.score - score) <= NUMPY_AGREEMENT


# --- batches -------------------------------------------------------------------------------------


@pytest.mark.parametrize("k_count", [2, 3])
def test_batch_equals_per_image(k_count):
    cases = [_exposures(30 + i, (70, 90), (0.35, 1.0, 2.1)[:k_count]) for i in range(3)]
    cases.append(_noise(33, (70, 90), k_count))
    sources, fused = _as_batch(cases)
    per_scale = mef_ssim_scales_batch(sources, fused)
    scores = mef_ms_ssim_batch(sources, fused)
    assert per_scale.shape == (4, 3) and scores.shape == (4,) and scores.dtype == torch.float64
    for i, (case_sources, case_fused) in enumerate(cases):
        single = mef_ms_ssim(case_sources, case_fused)
        # Same per-pixel values; only the order of the final sums may differ.
        np.testing.assert_allclose(per_scale[i].numpy(), single.per_scale, rtol=0, atol=1e-14)
        assert abs(float(scores[i]) - single.score) <= 1e-14
    # 8-bit values as a float tensor are the same input; the result does not depend on its dtype.
    assert torch.equal(mef_ms_ssim_batch(sources.double(), fused.float()), scores)
    assert len({float(s) for s in scores}) == 4  # the rows really differ


def test_batch_input_convention_is_enforced():
    sources, fused = _as_batch([_exposures(40, (50, 60), (0.5, 1.5))])
    with pytest.raises(ValueError, match="0..255"):
        mef_ms_ssim_batch(sources / 255.0, fused / 255.0)  # [0, 1] floats
    with pytest.raises(ValueError, match=r"\(N, K, 3, H, W\)"):
        mef_ms_ssim_batch(fused, sources)  # swapped
    with pytest.raises(ValueError, match="K >= 2"):
        mef_ms_ssim_batch(sources[:, :1], fused)
    with pytest.raises(ValueError, match="differ"):
        mef_ms_ssim_batch(sources, fused[..., :-1])
    with pytest.raises(ValueError, match="differ"):
        mef_ms_ssim_batch(torch.cat([sources, sources]), fused)
    with pytest.raises(TypeError, match="tensor"):
        mef_ms_ssim_batch(sources.numpy(), fused)


def test_batch_too_small_is_minus_inf():
    sources, fused = _as_batch([_exposures(41, (43, 60), (0.5, 1.5))] * 2)
    assert mef_ssim_scales_batch(sources, fused).shape == (2, 0)
    assert torch.equal(mef_ms_ssim_batch(sources, fused), torch.full((2,), -math.inf, dtype=torch.float64))


# --- the torch building blocks ---------------------------------------------------------------------


def test_strips_do_not_change_the_result(monkeypatch):
    """Every strip needs a 10-row halo; a wrong offset would shift or drop rows of the map."""
    cases = [_exposures(42 + i, (131, 97), (0.4, 1.0, 1.8)) for i in range(3)]
    sources, fused = cases[0]
    grays = np.stack([to_mef_gray(s) for s in sources])
    fused_gray = to_mef_gray(fused)
    monkeypatch.setattr(_torch_window, "_CPU_STRIP_ELEMENTS", 10**9)  # one block
    whole = mef_ssim_map(grays, fused_gray)
    whole_scores = mef_ssim_scales_batch(*_as_batch(cases))
    monkeypatch.setattr(_torch_window, "_CPU_STRIP_ELEMENTS", 1)  # one image per block, strips of 8 rows
    monkeypatch.setattr(_torch_window, "_MIN_ROWS", 8)
    assert len(_torch_window.blocks(3, 121, 87, 14, "cpu")) == 3 * 16  # ceil(121 / 8) strips per image
    # Equal up to the last bit or two: a vectorised kernel's tail runs scalar code (measured <= 4e-16).
    np.testing.assert_allclose(mef_ssim_map(grays, fused_gray), whole, rtol=1e-14, atol=0)
    np.testing.assert_allclose(mef_ssim_scales_batch(*_as_batch(cases)), whole_scores, rtol=0, atol=1e-15)


def test_threads_do_not_change_the_result():
    """Blocks run in `torch.get_num_threads()` threads of one intra-op thread each (`run_blocks`)."""
    cases = [_exposures(46 + i, (150, 120), (0.4, 1.0, 1.8)) for i in range(2)]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = mef_ssim_scales_batch(*_as_batch(cases))
        torch.set_num_threads(3)
        assert torch.equal(mef_ssim_scales_batch(*_as_batch(cases)), one)
        assert torch.get_num_threads() == 3  # left as it was
    finally:
        torch.set_num_threads(threads)


def test_box_sums_are_exact():
    """Window sums of 8-bit values, of their 2x2 means (multiples of 1/4, 1/16) and of products."""
    rng = np.random.default_rng(43)
    integers = rng.integers(-128, 128, (3, 40, 53))
    kernel = np.ones((11, 11), dtype=np.int64)
    for divisor in (1, 4, 16):
        values = integers * integers[::-1] if divisor == 1 else integers
        expected = np.stack([signal.correlate2d(v, kernel, mode="valid") for v in values])  # exact int64
        got = box_sum_valid(torch.from_numpy(values / divisor))
        assert torch.equal(got, torch.from_numpy(expected / divisor))


def test_gaussian_window_matches_scipy():
    values = torch.from_numpy(np.random.default_rng(44).integers(0, 256, (2, 30, 41)).astype(np.float64) ** 2)
    expected = ndimage.correlate1d(values.numpy(), GAUSSIAN_TAPS, axis=-2, mode="constant")[:, 5:-5]
    expected = ndimage.correlate1d(expected, GAUSSIAN_TAPS, axis=-1, mode="constant")[..., 5:-5]
    got = gaussian_valid(values).numpy()
    assert got.shape == (2, 20, 31)
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=0)


def test_tensor_inputs_give_tensors_on_their_device():
    sources, fused = _exposures(45, (60, 70), (0.5, 1.5))
    grays = torch.from_numpy(np.stack([to_mef_gray(s) for s in sources]))
    fused_gray = torch.from_numpy(to_mef_gray(fused))
    q_map = mef_ssim_map(grays, fused_gray)
    assert isinstance(q_map, torch.Tensor) and q_map.shape == (50, 60) and q_map.dtype == torch.float64
    as_array = mef_ssim_map(grays.numpy(), fused_gray.numpy())
    assert isinstance(as_array, np.ndarray)
    np.testing.assert_array_equal(q_map.numpy(), as_array)
    assert isinstance(downsample(fused_gray), torch.Tensor)
    assert mef_ssim_single(grays, fused_gray) == mef_ssim_single(grays.numpy(), fused_gray.numpy())


# --- CUDA -----------------------------------------------------------------------------------------

CUDA_AGREEMENT = 1e-10  # float64 on both; CUDA differs in summation order, FMA contraction and exp/log


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu():
    cases = [_exposures(50 + i, (140, 190), (0.35, 1.0, 2.1)) for i in range(2)] + [_noise(52, (140, 190), 3)]
    sources, fused = _as_batch(cases)
    cpu = mef_ssim_scales_batch(sources, fused)
    cuda = mef_ssim_scales_batch(sources.cuda(), fused.cuda())
    assert cuda.device.type == "cuda"
    np.testing.assert_allclose(cuda.cpu().numpy(), cpu.numpy(), rtol=0, atol=CUDA_AGREEMENT)
    np.testing.assert_allclose(mef_ms_ssim_batch(sources.cuda(), fused.cuda()).cpu().numpy(),
                               mef_ms_ssim_batch(sources, fused).numpy(), rtol=0, atol=CUDA_AGREEMENT)
    # The single-image API scores a CUDA tensor on its device, with the same result.
    tensors = [torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255).cuda() for image in cases[0][0]]
    fused_tensor = torch.from_numpy(cases[0][1].transpose(2, 0, 1).astype(np.float32) / 255).cuda()
    assert abs(mef_ms_ssim(tensors, fused_tensor).score - mef_ms_ssim(*cases[0]).score) <= CUDA_AGREEMENT
