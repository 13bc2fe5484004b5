"""Q^AB/F: calibration against MEFB's stored MATLAB values, GNU Octave runs of MEFB's unchanged
`metricsQabf.m`, a literal transcription of its loops, and the laws the metric obeys."""

from __future__ import annotations

import csv
import functools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage, signal

from cfanet.color import rgb2gray_uint8
from cfanet.images import read_image, read_image_array
from cfanet.metrics.qabf import IDENTICAL_SCORE, qabf, qabf_channel, sobel_gradients

MEFB_SCENES = (
    "Candle", "TableLamp", "Memorial", "House", "Kluki", "Lamp", "Landscape", "Church",
    "507", "AirBellowsGap", "ArtistPalette", "Knossos6", "Lake1", "Museum1", "Sky", "TestChart1",
)  # fmt: skip
MEFB_METHODS = ("MGFF", "FMMEF", "MEFNet", "U2Fusion")

# GNU Octave 7.3.0 running MEFB's metrics/metricsQabf.m unchanged, `metricsQabf(A, B, F)` on
# imread() of the House files (printed with %.10f; symmetric in A and B).
OCTAVE_HOUSE = {"MGFF": 0.7976893708, "FMMEF": 0.8429835686, "MEFNet": 0.8148103332, "U2Fusion": 0.7206012704}


def _file(folder: Path, stem: str) -> Path:
    (path,) = [p for p in folder.iterdir() if p.stem == stem]  # .png or .tif
    return path


def _stored_tolerance(stored: float) -> float:
    """Half a unit of the 5th significant digit (MEFB's values are stored to 5 significant digits)."""
    return 0.5 * 10.0 ** (math.floor(math.log10(abs(stored))) - 4) + 1e-12


@functools.lru_cache(maxsize=1)
def _mefb_stored(root: Path) -> dict[tuple[str, str], float]:
    with open(root / "mefb" / "mefb_metrics.csv", newline="") as handle:
        return {(row["scene"], row["method"]): float(row["Qabf"]) for row in csv.DictReader(handle)}


@functools.lru_cache(maxsize=2)
def _mefb_sources(scene_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    # MEFB's A/B are <scene>_A/_B; over/under map to them per scenes.csv. Q^AB/F is symmetric in A and B.
    return read_image(_file(scene_dir, "over")), read_image(_file(scene_dir, "under"))


@functools.lru_cache(maxsize=None)
def _ours(root: Path, scene: str, method: str) -> float:
    scene_dir = root / "mefb" / scene
    return qabf(list(_mefb_sources(scene_dir)), read_image(_file(scene_dir, f"fused_{method}")))


def _pattern_images() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three deterministic 7x9 RGB uint8 images, built by the same formulas in the Octave run."""
    i, j, k = np.meshgrid(np.arange(7), np.arange(9), np.arange(3), indexing="ij")
    p = np.mod(i * 37 + j * 91 + k * 13, 256).astype(np.uint8)
    q = np.mod(i * i * 5 + j * 3 + k * 50, 256).astype(np.uint8)
    r = np.floor((p.astype(np.float64) + q) / 2).astype(np.uint8)
    return p, q, r


def _constant(value: int, shape=(7, 9, 3)) -> np.ndarray:
    return np.full(shape, value, np.uint8)


def _smooth_image(rng: np.random.Generator, shape: tuple[int, int], sigma: float = 2.0) -> np.ndarray:
    """Seeded smooth uint8 RGB (H, W, 3) spanning most of 0..255."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape + (3,)), (sigma, sigma, 0))
    return np.clip(128 + 127 * noise / (3 * noise.std()), 0, 255).round().astype(np.uint8)


# --- calibration against MEFB -------------------------------------------------------------------


def test_mefb_csv_has_every_scene_and_method(shared_data):
    stored = _mefb_stored(shared_data)
    assert {(s, m) for s in MEFB_SCENES for m in MEFB_METHODS} <= set(stored)


@pytest.mark.parametrize("method", MEFB_METHODS)
@pytest.mark.parametrize("scene", MEFB_SCENES)
def test_mefb_stored_value(shared_data, scene, method):
    stored = _mefb_stored(shared_data)[scene, method]
    ours = _ours(shared_data, scene, method)
    assert abs(ours - stored) <= _stored_tolerance(stored), f"{scene}/{method}: ours {ours:.7f}, MEFB {stored}"


def test_mefb_max_difference(shared_data):
    """All 64 values at once; the largest difference is printed (pytest -s) for the record."""
    stored = _mefb_stored(shared_data)
    diffs = {(s, m): abs(_ours(shared_data, s, m) - stored[s, m]) for s in MEFB_SCENES for m in MEFB_METHODS}
    worst = max(diffs, key=diffs.get)
    print(f"\nQ^AB/F vs MEFB: max |ours - stored| = {diffs[worst]:.3e} at {worst[0]}/{worst[1]} ({len(diffs)} values)")
    assert diffs[worst] <= 5e-6  # every stored value lies in [0.1, 1): 5 digits = 5 decimals


def test_house_matches_octave_run_of_mefb_code(shared_data):
    for method, expected in OCTAVE_HOUSE.items():
        assert abs(_ours(shared_data, "House", method) - expected) <= 6e-11, method


def test_gray_conversion_is_not_mefb_convention(shared_data):
    """Scoring rgb2gray images instead of the per-channel mean misses MEFB's values by far more
    than the storage precision (the rgb2gray lines in metricsQabf.m never run on RGB input)."""
    scene_dir = shared_data / "mefb" / "House"
    planes = [
        rgb2gray_uint8(np.ascontiguousarray(np.moveaxis(read_image_array(_file(scene_dir, stem)), 2, 0)))
        for stem in ("over", "under", "fused_MGFF")
    ]
    stored = _mefb_stored(shared_data)["House", "MGFF"]
    assert abs(qabf_channel(*planes) - stored) > 10 * _stored_tolerance(stored)


# --- Octave oracle and the MATLAB loops ------------------------------------------------------------


# metricsQabf(A, B, F) printed with %.15f by GNU Octave 7.3.0 (MEFB's file, unchanged), for the
# images of `_pattern_images` and `_constant`.
OCTAVE_SMALL = {
    "identical": 0.975332768087588,  # (P, P, P)
    "constant": 0.935730057321707,  # (100, 50, 75): only the zero-padded border has gradients
    "constant_same": 0.975332768087588,  # (80, 80, 80)
    "mixed": 0.425428408525838,  # (P, Q, R)
    "mixed_swapped": 0.425428408525838,  # (Q, P, R)
    "mixed_fused_is_a": 0.588374284397893,  # (P, Q, P)
}


def test_small_cases_match_octave():
    p, q, r = _pattern_images()
    cases = {
        "identical": (p, p, p),
        "constant": (_constant(100), _constant(50), _constant(75)),
        "constant_same": (_constant(80), _constant(80), _constant(80)),
        "mixed": (p, q, r),
        "mixed_swapped": (q, p, r),
        "mixed_fused_is_a": (p, q, p),
    }
    for name, (a, b, f) in cases.items():
        assert abs(qabf([a, b], f) - OCTAVE_SMALL[name]) <= 1e-14, name
    assert math.isnan(qabf([_constant(0), _constant(0)], p))  # Octave: NaN (0/0)


def _qabf_loops(str_a: np.ndarray, str_b: np.ndarray, str_f: np.ndarray) -> float:
    """Line-by-line transcription of MEFB's inner `Qabf` for one channel (uint8 2-D planes)."""
    tg, kg, dg, ta, ka, da = 0.9994, -15, 0.5, 0.9879, -22, 0.8
    h1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float64)
    h3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64)
    grads = []
    for plane in (str_a, str_b, str_f):
        p = 255 * plane.astype(np.float64)  # 255 * im2double(double(x))
        sx = signal.convolve2d(p, h3, mode="same")  # conv2(..., 'same'): zero fill
        sy = signal.convolve2d(p, h1, mode="same")
        g = np.sqrt(sx**2 + sy**2)
        a = np.zeros_like(g)
        for i in range(g.shape[0]):
            for j in range(g.shape[1]):
                a[i, j] = math.pi / 2 if sx[i, j] == 0 else math.atan(sy[i, j] / sx[i, j])
        grads.append((g, a))
    (g_f, a_f) = grads[2]
    numerator = denominator = 0.0
    for g_s, a_s in grads[:2]:
        for i in range(g_f.shape[0]):
            for j in range(g_f.shape[1]):
                if g_s[i, j] > g_f[i, j]:
                    ratio = g_f[i, j] / g_s[i, j]
                elif g_s[i, j] == g_f[i, j]:
                    ratio = g_f[i, j]
                else:
                    ratio = g_s[i, j] / g_f[i, j]
                agreement = 1 - abs(a_s[i, j] - a_f[i, j]) / (math.pi / 2)
                q_g = tg / (1 + math.exp(kg * (ratio - dg)))
                q_a = ta / (1 + math.exp(ka * (agreement - da)))
                numerator += q_g * q_a * g_s[i, j]
                denominator += g_s[i, j]
    return numerator / denominator


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_matlab_loops(seed):
    rng = np.random.default_rng(seed)
    a = _smooth_image(rng, (17, 23))
    b = np.clip(a.astype(np.int16) // 2 + rng.integers(-3, 4, a.shape), 0, 255).astype(np.uint8)
    f = ((a.astype(np.uint16) + b) // 2).astype(np.uint8)
    a[:6, :7] = 255  # flat saturated block: x == 0 (atan branch) and g == 0
    b[-5:, -8:] = 0
    f[2:9, 10:16] = a[2:9, 10:16]  # equal gradients in F and A: the g_A == g_F branch
    f[-4:, :5] = 77
    for c in range(3):
        expected = _qabf_loops(a[:, :, c], b[:, :, c], f[:, :, c])
        assert abs(qabf_channel(a[:, :, c], b[:, :, c], f[:, :, c]) - expected) <= 1e-13
    expected_mean = np.mean([_qabf_loops(a[:, :, c], b[:, :, c], f[:, :, c]) for c in range(3)])
    assert abs(qabf([a, b], f) - expected_mean) <= 1e-13


def test_sobel_is_matlab_conv2_same_with_zero_padding():
    plane = np.random.default_rng(7).integers(0, 256, (6, 8)).astype(np.float64)
    x, y = sobel_gradients(plane)
    np.testing.assert_array_equal(x, signal.convolve2d(plane, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], mode="same"))
    np.testing.assert_array_equal(y, signal.convolve2d(plane, [[1, 2, 1], [0, 0, 0], [-1, -2, -1]], mode="same"))


# --- laws ----------------------------------------------------------------------------------------


def test_identical_images_give_the_known_value():
    # F == A == B: A = 1 and, by the g_A == g_F branch (G = g_F >= 255, not 1), Q_g = T_g exactly.
    assert IDENTICAL_SCORE == pytest.approx(0.9994 * 0.9879 / (1 + math.exp(-22 * 0.2)), abs=1e-16)
    image = np.random.default_rng(2).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    assert abs(qabf([image, image], image) - IDENTICAL_SCORE) <= 1e-15
    # With the ratio 1 that the paper intends it would be lower:
    assert IDENTICAL_SCORE > 0.9994 / (1 + math.exp(-15 * 0.5)) * 0.9879 / (1 + math.exp(-22 * 0.2))


def test_symmetric_in_the_sources():
    rng = np.random.default_rng(3)
    a, b = _smooth_image(rng, (30, 41)), _smooth_image(rng, (30, 41))
    f = ((a.astype(np.uint16) * 3 + b) // 4).astype(np.uint8)
    score = qabf([a, b], f)
    assert qabf([b, a], f) == score
    assert 0.2 < score < IDENTICAL_SCORE


def test_fused_closer_to_sources_scores_higher():
    rng = np.random.default_rng(4)
    a, b = _smooth_image(rng, (48, 48)), _smooth_image(rng, (48, 48))
    good = qabf([a, b], ((a.astype(np.uint16) + b) // 2).astype(np.uint8))
    bad = qabf([a, b], _smooth_image(rng, (48, 48)))
    assert bad < good < IDENTICAL_SCORE


def test_constant_images():
    # Zero padding gives constant images gradients on their border only, so the score is finite.
    assert qabf([_constant(100), _constant(50)], _constant(75)) == pytest.approx(0.935730057321707, abs=1e-14)
    assert abs(qabf([_constant(80), _constant(80)], _constant(80)) - IDENTICAL_SCORE) <= 1e-15
    # A black fused image preserves nothing: every Q_g is T_g / (1 + exp(7.5)).
    assert qabf([_constant(100), _constant(50)], _constant(0)) < 1e-3
    # Both sources black: 0 / 0 in MATLAB, NaN here; one black channel makes the mean NaN too.
    assert math.isnan(qabf([_constant(0), _constant(0)], _constant(75)))
    a, b = _constant(90), _constant(40)
    a[:, :, 1] = b[:, :, 1] = 0
    assert math.isnan(qabf([a, b], _constant(60)))


def test_channels_are_scored_separately_and_averaged():
    rng = np.random.default_rng(5)
    a, b, f = (_smooth_image(rng, (25, 33)) for _ in range(3))
    per_channel = [qabf_channel(a[:, :, c], b[:, :, c], f[:, :, c]) for c in range(3)]
    assert abs(qabf([a, b], f) - np.mean(per_channel)) <= 1e-15
    bgr = [x[:, :, ::-1] for x in (a, b, f)]
    assert abs(qabf(bgr[:2], bgr[2]) - qabf([a, b], f)) <= 1e-15


def test_accepted_input_forms_agree(tmp_path):
    from cfanet.images import write_image

    rng = np.random.default_rng(6)
    tensors = [torch.from_numpy(rng.random((1, 3, 20, 26), dtype=np.float32)) for _ in range(3)]
    score = qabf(tensors[:2], tensors[2])
    assert 0 < score < 1
    assert qabf((tensors[0][0], tensors[1][0]), tensors[2][0]) == score  # (3, H, W)
    assert qabf(torch.cat(tensors[:2]), tensors[2]) == score  # stacked (2, 3, H, W)
    assert qabf([t.numpy() for t in tensors[:2]], tensors[2].numpy()) == score
    saved = [read_image_array(write_image(tmp_path / f"{i}.png", t)) for i, t in enumerate(tensors)]
    assert qabf(saved[:2], saved[2]) == score  # float input is quantised like an 8-bit save


def test_size_mismatch_raises():
    a = np.zeros((20, 30, 3), np.uint8)
    with pytest.raises(ValueError, match=r"differ in size.*fused image 20x31"):
        qabf([a, a], np.zeros((20, 31, 3), np.uint8))
    with pytest.raises(ValueError, match=r"differ in size.*source B 21x30"):
        qabf([a, np.zeros((21, 30, 3), np.uint8)], a)
    with pytest.raises(ValueError, match="three 2-D planes of one shape"):
        qabf_channel(np.zeros((4, 5)), np.zeros((4, 5)), np.zeros((5, 4)))


def test_wrong_shapes_and_counts_raise():
    a = torch.zeros(1, 3, 12, 12)
    with pytest.raises(ValueError, match="exactly 2 source images"):
        qabf([a], a)
    with pytest.raises(ValueError, match="exactly 2 source images"):
        qabf([a, a, a], a)
    with pytest.raises(ValueError, match="fused image: unsupported shape"):
        qabf([a, a], torch.zeros(1, 1, 12, 12))
    with pytest.raises(ValueError, match="source A: unsupported shape"):
        qabf([torch.zeros(12, 12), a], a)
    with pytest.raises(ValueError, match="batch of 2"):
        qabf([a, a], torch.zeros(2, 3, 12, 12))
    with pytest.raises(ValueError, match=r"stack 2 images"):
        qabf(torch.zeros(3, 12, 12), a)
    with pytest.raises(TypeError, match="source B"):
        qabf([a, torch.zeros(1, 3, 12, 12, dtype=torch.uint8)], a)
