"""MGFF (baselines/mef/mgff.py): bit-exact parity with MEFB's published outputs, checksums, properties.

The parity tests read ../shared/data/mefb (skipped when absent). The checksums of our outputs on
three synthetic demo pairs are checked always, so a change in the numbers shows without the data.
The unrounded doubles are compared with a NumPy re-statement of the author's arithmetic (the
implementation before the torch one), and CUDA's results with the CPU's (skipped without CUDA).
The checksums live in tests/fixtures/mef_classic_checksums.json (shared with the other classical
MEF methods) under "MGFF": "mefb/<scene>" and "demo/<scene>", each the SHA-256 of our uint8
(H, W, 3) RGB result in C order with MgffConfig() (no MEFB stretch); the demo pairs are
`DemoDataset(2, num_scenes=3, hr_size=96, seed=0)`'s gt_over / gt_under. Regenerate the "MGFF"
entry (other methods' entries are kept):

    python tests/test_mgff.py --regen-checksums
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.mef import mgff
from baselines.mef.mgff import (
    MGFF,
    MgffConfig,
    box_sum,
    cross_guided_filter,
    fuse,
    fuse_planes,
    fuse_uint8,
    guided_filter,
    matlab_uint8,
    mefb_stretch,
    window_count,
)
from cfanet.images import quantize, quantize_tensor, read_image, read_image_array

CHECKSUMS = Path(__file__).resolve().parent / "fixtures" / "mef_classic_checksums.json"
KEY = "MGFF"
MEFB_SCENES = ("Candle", "TableLamp", "Memorial", "House", "Kluki", "Lamp", "Landscape", "Church", "507",
               "AirBellowsGap", "ArtistPalette", "Knossos6", "Lake1", "Museum1", "Sky", "TestChart1")
STRETCH_SCENES = ("Landscape", "ArtistPalette", "Lake1")  # mgff_mefb_stretch = 1 in scenes.csv
SAME_SIZE_SCENES = ("507", "AirBellowsGap", "ArtistPalette")  # all 356 x 536: one batch
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def sha256(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def to_uint8(fused: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) output of `fuse` -> the uint8 (H, W, 3) image it stands for (exact: it is u / 255)."""
    return quantize(fused[0]).transpose(1, 2, 0)


def rgb_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) or (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 1]."""
    image = image[None] if image.ndim == 3 else image
    return torch.from_numpy(image.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)


def random_pair(height: int, width: int, seed: int = 0, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth-ish bright and dark pair of random images, float32 (batch, 3, H, W) on the 8-bit grid."""
    rng = np.random.default_rng(seed)
    scene = rng.uniform(0, 1, (batch, height, width, 3))
    over = np.clip(scene * 1.6 + rng.normal(0, 0.03, scene.shape), 0, 1)
    under = np.clip(scene * 0.4 + rng.normal(0, 0.03, scene.shape), 0, 1)
    return rgb_tensor(quantize(over)), rgb_tensor(quantize(under))


# ---------------------------------------------------------------------------------------------
# MEFB parity (needs ../shared/data)


def _scene_file(folder: Path, stem: str) -> Path:
    matches = sorted(folder.glob(f"{stem}.*"))
    if not matches:
        pytest.fail(f"{folder}: no {stem}.* file")
    return matches[0]


@functools.lru_cache(maxsize=None)
def _scenes_csv(root: Path) -> dict[str, dict[str, str]]:
    with open(root / "mefb" / "scenes.csv", newline="") as handle:
        return {row["scene"]: row for row in csv.DictReader(handle)}


@functools.lru_cache(maxsize=None)
def _ours(root: Path, scene: str, stretch: bool) -> np.ndarray:
    folder = root / "mefb" / scene
    over, under = (read_image(_scene_file(folder, stem)) for stem in ("over", "under"))
    return to_uint8(fuse(over, under, MgffConfig(mefb_stretch=stretch)))


def _reference(root: Path, scene: str) -> np.ndarray:
    return read_image_array(_scene_file(root / "mefb" / scene, "fused_MGFF"))


def test_scene_list_matches_scenes_csv(shared_data):
    rows = _scenes_csv(shared_data)
    assert sorted(rows) == sorted(MEFB_SCENES)
    assert sorted(name for name, row in rows.items() if row["mgff_mefb_stretch"] == "1") == sorted(STRETCH_SCENES)


@pytest.mark.parametrize("scene", MEFB_SCENES)
def test_matches_mefb_bit_for_bit(shared_data, scene):
    stretch = _scenes_csv(shared_data)[scene]["mgff_mefb_stretch"] == "1"
    ours, reference = _ours(shared_data, scene, stretch), _reference(shared_data, scene)
    assert ours.shape == reference.shape
    differing = int(np.count_nonzero(ours != reference))
    assert differing == 0, f"{scene}: {differing} of {ours.size} values differ from MEFB's fused_MGFF"
    if not stretch:  # the flag would change nothing here: the result already spans 0..255
        assert np.array_equal(mefb_stretch(ours), ours)


@pytest.mark.parametrize("scene", STRETCH_SCENES)
def test_mefb_stretch_is_needed_on_three_scenes(shared_data, scene):
    plain = _ours(shared_data, scene, False)
    assert (plain.min(), plain.max()) != (0, 255)
    assert np.count_nonzero(plain != _reference(shared_data, scene)) > 0
    assert np.array_equal(mefb_stretch(plain), _reference(shared_data, scene))


def _pair(root: Path, scene: str) -> tuple[torch.Tensor, torch.Tensor]:
    folder = root / "mefb" / scene
    return tuple(read_image(_scene_file(folder, stem)) for stem in ("over", "under"))


@pytest.mark.parametrize("stretch", [False, True])
def test_mefb_batch_equals_pair_by_pair(shared_data, stretch):
    # Three real scenes of one size in one call (9 planes fused together) give each scene's result.
    pairs = [_pair(shared_data, scene) for scene in SAME_SIZE_SCENES]
    batch = fuse(torch.cat([o for o, _ in pairs]), torch.cat([u for _, u in pairs]), MgffConfig(mefb_stretch=stretch))
    for i, scene in enumerate(SAME_SIZE_SCENES):
        assert np.array_equal(to_uint8(batch[i:i + 1]), _ours(shared_data, scene, stretch)), scene
        if stretch or scene != "ArtistPalette":
            assert np.array_equal(to_uint8(batch[i:i + 1]), _reference(shared_data, scene)), scene


def _stored_checksums() -> dict[str, str]:
    stored = json.loads(CHECKSUMS.read_text()).get(KEY) if CHECKSUMS.is_file() else None
    if stored is None:
        pytest.fail(f"{CHECKSUMS} has no {KEY!r} entry; run `python tests/test_mgff.py --regen-checksums`")
    return stored


def test_mefb_checksums(shared_data):
    stored = _stored_checksums()
    changed = [scene for scene in MEFB_SCENES if sha256(_ours(shared_data, scene, False)) != stored[f"mefb/{scene}"]]
    assert not changed, f"MGFF output changed on {changed}"


# ---------------------------------------------------------------------------------------------
# Checksums on synthetic pairs (no data needed)


@functools.lru_cache(maxsize=None)
def _demo_pairs() -> tuple[tuple[str, torch.Tensor, torch.Tensor], ...]:
    from cfanet.data.demo import DemoDataset

    return tuple((scene.name, scene.gt_over, scene.gt_under)
                 for scene in DemoDataset(2, num_scenes=3, hr_size=96, seed=0))


def _demo_checksums() -> dict[str, str]:
    return {f"demo/{name}": sha256(to_uint8(fuse(over, under))) for name, over, under in _demo_pairs()}


def test_demo_checksums():
    stored = _stored_checksums()
    actual = _demo_checksums()
    assert sorted(actual) == sorted(key for key in stored if key.startswith("demo/"))
    changed = [name for name, digest in actual.items() if stored[name] != digest]
    assert not changed, f"MGFF output changed on {changed} (or the demo data did: see Fast-SPD-MEF's demo checksums)"


# ---------------------------------------------------------------------------------------------
# Properties


def test_symmetric_in_exposure_order():
    for over, under in (random_pair(37, 53, seed=1), (_demo_pairs()[0][1], _demo_pairs()[0][2])):
        assert torch.equal(fuse(over, under), fuse(under, over))


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (3, 5), (18, 19), (19, 19), (20, 21), (37, 53)])
def test_any_size_runs_and_keeps_shape(shape):
    over, under = random_pair(*shape, seed=2, batch=2)
    out = fuse(over, under)
    assert out.shape == over.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, torch.round(out * 255) / 255)  # an 8-bit image


def test_batch_items_are_independent():
    over, under = random_pair(23, 31, seed=3, batch=3)
    for config in (MgffConfig(), MgffConfig(mefb_stretch=True)):
        batched = fuse(over, under, config)
        for i in range(3):
            assert torch.equal(batched[i:i + 1], fuse(over[i:i + 1], under[i:i + 1], config))


def test_channel_order_equivariance():
    over, under = random_pair(29, 41, seed=4)
    permutation = [2, 0, 1]
    for config in (MgffConfig(), MgffConfig(mefb_stretch=True)):
        assert torch.equal(fuse(over[:, permutation], under[:, permutation], config),
                           fuse(over, under, config)[:, permutation])


def test_constant_inputs():
    def constant(value: int) -> np.ndarray:
        return np.full((24, 30, 3), value, np.uint8)

    # Distinct constants: the details cancel level by level and the base is the mean,
    # rounded half away from zero ((201 + 50) / 2 = 125.5 -> 126).
    assert np.all(fuse_uint8(constant(200), constant(50)) == 125)
    assert np.all(fuse_uint8(constant(201), constant(50)) == 126)
    # Equal constants: every detail is 0, every weight 0/0 = NaN, and NaN is written as 0.
    assert np.all(np.isnan(fuse_planes(np.full((3, 24, 30), 100.0), np.full((3, 24, 30), 100.0))))
    assert np.all(fuse_uint8(constant(100), constant(100)) == 0)


def test_nan_where_both_details_vanish_is_written_as_zero():
    # Two different textured images sharing a flat top-left corner: near the corner both details
    # are exactly 0 at the first level (exact integer window sums), so both weights are 0/0.
    rng = np.random.default_rng(5)
    over = rng.integers(0, 256, (60, 70, 3), dtype=np.uint8)
    under = rng.integers(0, 256, (60, 70, 3), dtype=np.uint8)
    over[:30, :30] = under[:30, :30] = 77
    planes = [image.transpose(2, 0, 1).astype(np.float64) for image in (over, under)]
    nan = np.isnan(fuse_planes(*planes))
    assert nan[:, :12, :12].all() and not nan[:, 30:, :].any() and not nan[:, :, 30:].any()
    out = fuse_uint8(over, under)
    assert np.all(out[:12, :12] == 0)  # not 77: the author's code writes NaN as 0
    assert np.array_equal(to_uint8(fuse(rgb_tensor(over), rgb_tensor(under))), out)


def test_fusing_an_image_with_itself_returns_it():
    image = np.random.default_rng(6).integers(0, 256, (33, 47, 3), dtype=np.uint8)  # no flat areas
    assert np.array_equal(fuse_uint8(image, image), image)


def test_inputs_are_quantised_to_8_bits_first():
    over, under = random_pair(21, 26, seed=7)
    jitter = torch.from_numpy(np.random.default_rng(8).uniform(-0.4, 0.4, over.shape).astype(np.float32)) / 255
    assert torch.equal(fuse(over + jitter, under - jitter), fuse(over, under))
    assert torch.equal(fuse(over + jitter, under), fuse(quantize_tensor(over + jitter), under))


def test_uint8_core_matches_tensor_boundary_and_gray_path():
    over, under = random_pair(25, 34, seed=9)
    over_u8, under_u8 = (quantize(x[0]).transpose(1, 2, 0) for x in (over, under))
    rgb = fuse_uint8(over_u8, under_u8)
    assert rgb.dtype == np.uint8 and rgb.shape == over_u8.shape
    assert np.array_equal(rgb, to_uint8(fuse(over, under)))
    for c in range(3):  # the gray path (the author's fuse_MGF) is the same per channel
        assert np.array_equal(fuse_uint8(over_u8[:, :, c].copy(), under_u8[:, :, c].copy()), rgb[:, :, c])


def test_matlab_uint8_rounding():
    values = np.array([-3.0, -0.5, -0.4, 0.49999999999999994, 0.5, 1.5, 2.5, 254.4, 254.5, 255.5, 1e9, np.nan])
    assert matlab_uint8(values).tolist() == [0, 0, 0, 0, 1, 2, 3, 254, 255, 255, 255, 0]
    assert matlab_uint8(torch.from_numpy(values)).tolist() == [0, 0, 0, 0, 1, 2, 3, 254, 255, 255, 255, 0]


def test_mefb_stretch():
    full = np.array([[[0, 128, 255]]], np.uint8)
    assert np.array_equal(mefb_stretch(full), full)
    assert mefb_stretch(np.array([[[2, 3, 255]]], np.uint8)).tolist() == [[[0, 1, 255]]]
    # MATLAB's arithmetic: 98 * (1 / 196) = 0.49999999999999994 -> 127 (the exact 0.5 would give 128);
    # this is why writing the stretch as (u - min) / (max - min) misses MEFB's ArtistPalette (max 196).
    assert mefb_stretch(np.array([[[0, 98, 196]]], np.uint8)).tolist() == [[[0, 127, 255]]]
    # mat2gray leaves a constant image as is, then clips to [0, 1]: nonzero -> 255
    assert np.all(mefb_stretch(np.full((2, 2, 3), 7, np.uint8)) == 255)
    assert np.all(mefb_stretch(np.zeros((2, 2, 3), np.uint8)) == 0)
    image = np.random.default_rng(13).integers(3, 197, (5, 7, 3), dtype=np.uint8)  # tensors: the same
    assert torch.equal(mefb_stretch(torch.from_numpy(image)), torch.from_numpy(mefb_stretch(image)))


def _brute_box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the (2r+1)^2 window clipped at the border, by direct summation (tiny arrays only)."""
    height, width = x.shape
    out = np.empty_like(x)
    for i in range(height):
        for j in range(width):
            out[i, j] = x[max(i - radius, 0):i + radius + 1, max(j - radius, 0):j + radius + 1].mean()
    return out


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (7, 1), (19, 19), (20, 23), (40, 41)])
@pytest.mark.parametrize("radius", [0, 1, 9])
def test_box_sum_is_the_clipped_window_sum(shape, radius):
    x = np.random.default_rng(10).integers(0, 256, shape).astype(np.float64)  # integers: sums are exact
    count = window_count(shape, radius)
    assert np.array_equal(count, box_sum(np.ones(shape), radius))
    assert np.array_equal(box_sum(x, radius) / count, _brute_box_mean(x, radius))


def test_guided_filter_against_direct_formula():
    rng = np.random.default_rng(11)
    guide, source = rng.uniform(0, 255, (2, 23, 17))
    radius, eps = 3, 1000.0
    mean = functools.partial(_brute_box_mean, radius=radius)
    mean_i, mean_p = mean(guide), mean(source)
    a = (mean(guide * source) - mean_i * mean_p) / (mean(guide * guide) - mean_i ** 2 + eps)
    expected = mean(a) * guide + mean(mean_p - a * mean_i)
    np.testing.assert_allclose(guided_filter(guide, source, radius, eps), expected, rtol=0, atol=1e-9)


def test_cross_guided_filter_is_two_guided_filters():
    x1, x2 = np.random.default_rng(12).uniform(0, 255, (2, 3, 41, 29))
    first, second = cross_guided_filter(x1, x2, 9, 1000.0)
    assert np.array_equal(first, guided_filter(x1, x2, 9, 1000.0))
    assert np.array_equal(second, guided_filter(x2, x1, 9, 1000.0))


def test_method_object():
    over, under = random_pair(16, 20, seed=12)
    method = MGFF()
    assert method.name == "MGFF" and method.config == MgffConfig()
    assert torch.equal(method.fuse(over, under), fuse(over, under))
    stretched = MGFF(MgffConfig(mefb_stretch=True))
    assert torch.equal(stretched.fuse(over, under), fuse(over, under, MgffConfig(mefb_stretch=True)))


# ---------------------------------------------------------------------------------------------
# The same doubles as the author's arithmetic, however the work is split


def _reference_planes(x1: np.ndarray, x2: np.ndarray, radius: int = 9, eps: float = 1000.0,
                      levels: int = 4) -> np.ndarray:
    """MGFF's unrounded planes in NumPy, operation for operation as `fuse_MGF_RGB`: He's
    `boxfilter` (cumulative sums down, then across; border windows clipped), the guided filter's
    Eqns. (5), (6), (8), cross-guidance, and the weighted details (0/0 = NaN)."""

    def window_sums(x: np.ndarray, axis: int) -> np.ndarray:
        cumulative = np.moveaxis(np.cumsum(x, axis=axis), axis, 0)
        n, inner = cumulative.shape[0], max(cumulative.shape[0] - radius, 0)
        out = np.empty_like(cumulative)
        out[:inner] = cumulative[radius:]  # the window ends at i + r ...
        out[inner:] = cumulative[n - 1]  # ... or at the border
        if n > radius + 1:
            out[radius + 1:] -= cumulative[:n - radius - 1]  # minus what lies before i - r
        return np.moveaxis(out, 0, axis)

    count = window_sums(window_sums(np.ones(x1.shape[-2:]), -2), -1)

    def mean(x: np.ndarray) -> np.ndarray:
        return window_sums(window_sums(x, -2), -1) / count

    def guided(guide: np.ndarray, source: np.ndarray) -> np.ndarray:
        mean_i, mean_p = mean(guide), mean(source)
        a = (mean(guide * source) - mean_i * mean_p) / (mean(guide * guide) - mean_i * mean_i + eps)
        return mean(a) * guide + mean(mean_p - a * mean_i)

    base1, base2, detail = x1, x2, None
    for _ in range(levels):
        next1, next2 = guided(base1, base2), guided(base2, base1)
        d1, d2 = base1 - next1, base2 - next2
        s1, s2 = np.abs(d1), np.abs(d2)
        with np.errstate(invalid="ignore"):
            level = d1 * (s1 / (s1 + s2)) + d2 * (s2 / (s1 + s2))
        detail = level if detail is None else detail + level
        base1, base2 = next1, next2
    return 0.5 * (base1 + base2) + detail


def _planes_pair(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two float64 [0, 255] integer-valued exposures; from 45 x 45 on, with a flat 30 x 30 corner
    where both details vanish (0/0 = NaN weights, as in the NaN test below)."""
    rng = np.random.default_rng(seed)
    over = rng.integers(0, 256, shape).astype(np.float64)
    under = np.clip(np.round(over * 0.3 + rng.normal(0, 4, shape)), 0, 255)
    if min(shape[-2:]) >= 45:
        over[..., :30, :30] = under[..., :30, :30] = 40.0
    return over, under


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 1, 9), (2, 9, 1), (3, 12, 20), (2, 19, 20), (3, 21, 19),
                                   (2, 50, 33), (1, 131, 7), (2, 60, 70)])
def test_unrounded_planes_are_the_reference_doubles(shape):
    over, under = _planes_pair(shape, seed=sum(shape))
    expected = _reference_planes(over, under)
    assert np.array_equal(fuse_planes(over, under), expected, equal_nan=True)
    assert np.array_equal(fuse_planes(torch.from_numpy(over), torch.from_numpy(under)).numpy(), expected,
                          equal_nan=True)
    assert np.isnan(expected).any() == (min(shape[-2:]) >= 45)


def test_strips_groups_and_threads_change_no_bit(monkeypatch):
    over, under = _planes_pair((4, 61, 47), seed=20)
    expected = _reference_planes(over, under)
    threads = torch.get_num_threads()
    for strip, group, workers in ((1, 1, 1), (1, 1, 3), (47 * 2, 61 * 47, 2), (10 ** 9, 10 ** 9, 1)):
        # strip 1: one row at a time (the ring of cumulative sums slides often); group 1: planes
        # fused one by one, `workers` at a time; huge: everything at once
        monkeypatch.setattr(mgff, "STRIP_ELEMENTS", strip)
        monkeypatch.setitem(mgff.GROUP_ELEMENTS, "cpu", group)
        torch.set_num_threads(workers)
        try:
            assert np.array_equal(fuse_planes(over, under), expected, equal_nan=True), (strip, group, workers)
            # The worker threads leave torch's setting as it was, here and for threads started later.
            later = []
            thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
            thread.start()
            thread.join()
            assert torch.get_num_threads() == workers and later == [workers]
        finally:
            torch.set_num_threads(threads)


def test_cross_guided_filter_matches_reference_and_takes_tensors():
    x1, x2 = np.random.default_rng(14).uniform(0, 255, (2, 2, 30, 44))
    first, second = cross_guided_filter(torch.from_numpy(x1), torch.from_numpy(x2), 9, 1000.0)
    assert isinstance(first, torch.Tensor)
    assert np.array_equal(first.numpy(), guided_filter(x1, x2, 9, 1000.0))
    assert np.array_equal(second.numpy(), guided_filter(x2, x1, 9, 1000.0))
    assert np.array_equal(_reference_planes(x1, x2, levels=1),
                          fuse_planes(x1, x2, MgffConfig(levels=1)), equal_nan=True)


# ---------------------------------------------------------------------------------------------
# CUDA: the same bits as the CPU (skipped without CUDA)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())


@needs_cuda
def test_cuda_equals_cpu():
    pairs = [random_pair(1, 1, seed=15), random_pair(9, 1, seed=16), random_pair(37, 53, seed=17, batch=3),
             random_pair(600, 700, seed=18, batch=2), random_pair(1000, 1000, seed=19)]
    pairs += [(over, under) for _, over, under in _demo_pairs()]
    for over, under in pairs:
        for config in (MgffConfig(), MgffConfig(mefb_stretch=True)):
            gpu = fuse(over.cuda(), under.cuda(), config)
            assert gpu.device.type == "cuda"
            assert torch.equal(gpu.cpu(), fuse(over, under, config)), (tuple(over.shape), config)
    for shape in [(2, 50, 33), (3, 300, 517)]:
        over, under = (torch.from_numpy(x) for x in _planes_pair(shape, seed=21))
        assert _same(fuse_planes(over.cuda(), under.cuda()).cpu(), fuse_planes(over, under)), shape


@needs_cuda
@pytest.mark.parametrize("scene", MEFB_SCENES)
def test_cuda_matches_mefb_bit_for_bit(shared_data, scene):
    stretch = _scenes_csv(shared_data)[scene]["mgff_mefb_stretch"] == "1"
    over, under = _pair(shared_data, scene)
    ours = to_uint8(fuse(over.cuda(), under.cuda(), MgffConfig(mefb_stretch=stretch)).cpu())
    assert np.array_equal(ours, _reference(shared_data, scene))


# ---------------------------------------------------------------------------------------------
# Malformed inputs


def test_malformed_tensors_raise():
    over, under = random_pair(10, 12)
    cases = [
        (over, random_pair(10, 13)[1], "differ in shape"),
        (over[:, :1], under[:, :1], "(N, 3, H, W)"),
        (torch.cat([over, over[:, :1]], 1), torch.cat([under, under[:, :1]], 1), "(N, 3, H, W)"),
        (over[0], under[0], "(N, 3, H, W)"),
        (over.numpy(), under, "ndarray"),
        ([[0.5]], under, "list"),
        ((over * 255).to(torch.uint8), under, "float"),
    ]
    for a, b, message in cases:
        with pytest.raises(ValueError, match="MGFF") as info:
            fuse(a, b)
        assert message in str(info.value)
    with pytest.raises(ValueError, match="empty"):
        fuse(over[:, :, :0], under[:, :, :0])


def test_malformed_arrays_raise():
    image = np.zeros((8, 9, 3), np.uint8)
    with pytest.raises(ValueError, match="differ in shape"):
        fuse_uint8(image, np.zeros((8, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        fuse_uint8(image.astype(np.float64), image)
    with pytest.raises(ValueError, match="uint8"):
        fuse_uint8(image[None], image[None])
    with pytest.raises(ValueError, match="uint8"):
        fuse_uint8("image", image)


@pytest.mark.parametrize("kwargs", [{"radius": -1}, {"radius": 2.5}, {"eps": 0.0}, {"eps": float("nan")},
                                    {"levels": 0}, {"levels": True}])
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError, match="MGFF"):
        MgffConfig(**kwargs)


# ---------------------------------------------------------------------------------------------


def regenerate_checksums() -> None:
    """Recompute this method's checksums and rewrite only its entry of the shared file."""
    entries = _demo_checksums()
    root = Path(os.environ.get("CFANET_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
    if (root / "mefb").is_dir():
        entries.update({f"mefb/{scene}": sha256(_ours(root, scene, False)) for scene in MEFB_SCENES})
    table = json.loads(CHECKSUMS.read_text()) if CHECKSUMS.is_file() else {}  # read last: others write too
    if not (root / "mefb").is_dir():
        print(f"{root / 'mefb'} not found: keeping the stored mefb checksums")
        entries.update({key: value for key, value in table.get(KEY, {}).items() if key.startswith("mefb/")})
    table[KEY] = dict(sorted(entries.items()))
    part = CHECKSUMS.with_name(CHECKSUMS.name + ".mgff.part")
    part.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    os.replace(part, CHECKSUMS)
    print(f"wrote {len(entries)} {KEY} checksums to {CHECKSUMS}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--regen-checksums"]:
        sys.exit(f"usage: python {sys.argv[0]} --regen-checksums")
    regenerate_checksums()
