"""Fast SPD-MEF (baselines/mef/fast_spd_mef.py): MEFB parity, regression checksums, properties.

Parity: on the 16 MEFB scenes in ../shared/data/mefb our 8-bit output (the torch harness path `fuse`)
equals MEFB's published `fused_FMMEF` file (made by the official MATLAB code) in every value. The
float64 arithmetic is pinned by a digest (`FLOAT64_DIGEST`), by He's `boxfilter.m` rewritten here,
and by properties: strips, running sums by loops (the CUDA path), thread settings and batches never
change a bit; on CUDA the
result equals the CPU's (skipped without CUDA). Checksums: SHA-256 of our
uint8 outputs, an (H, W, 3) RGB array's C-order bytes, stored under the key "Fast-SPD-MEF" of
`fixtures/mef_classic_checksums.json` (shared with the other classical MEF methods): "mefb/<scene>"
(checked when the data is present) and "demo/<scene>" for three synthetic pairs (always checked).
Regenerate (rewrites only this method's key, keeps the others):

    python tests/test_fast_spd_mef.py --regen-checksums
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.mef.fast_spd_mef import (
    FastSpdMef,
    FastSpdMefConfig,
    _sqrt_,
    box_sum,
    box_sum_hw,
    fuse,
    fuse_float,
    fuse_tensor,
    fuse_uint8,
    integer_powers,
    intermediate_levels,
)
from cfanet.data.demo import DemoDataset
from cfanet.images import quantize, read_image, read_image_array

CHECKSUMS = Path(__file__).resolve().parent / "fixtures" / "mef_classic_checksums.json"
KEY = "Fast-SPD-MEF"
MEFB_SCENES = ("Candle", "TableLamp", "Memorial", "House", "Kluki", "Lamp", "Landscape", "Church", "507",
               "AirBellowsGap", "ArtistPalette", "Knossos6", "Lake1", "Museum1", "Sky", "TestChart1")


# -- helpers ---------------------------------------------------------------------------------------


def _hwc_uint8(fused: torch.Tensor) -> np.ndarray:
    """The harness output (1, 3, H, W), k/255 values -> the uint8 (H, W, 3) image it stands for."""
    return quantize(fused[0].permute(1, 2, 0))


def _sha256(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image, dtype=np.uint8).tobytes()).hexdigest()


@functools.lru_cache(maxsize=None)
def _mefb_fused(root: Path, scene: str) -> np.ndarray:
    """Our uint8 output on one MEFB scene (computed once per session)."""
    folder = root / "mefb" / scene
    over, under = (read_image(next(folder.glob(f"{role}.*"))) for role in ("over", "under"))
    return _hwc_uint8(fuse(over, under))


@functools.lru_cache(maxsize=None)
def _demo_pairs() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Three deterministic synthetic 96 x 96 pairs (HR over/under of the demo set), by scene name."""
    dataset = DemoDataset(2, num_scenes=3, hr_size=96, seed=0)
    return {scene.name: (scene.gt_over, scene.gt_under) for scene in dataset}


def _demo_checksums() -> dict[str, str]:
    return {f"demo/{name}": _sha256(_hwc_uint8(fuse(over, under))) for name, (over, under) in _demo_pairs().items()}


def _stored() -> dict[str, str]:
    if not CHECKSUMS.is_file():
        pytest.fail(f"{CHECKSUMS} is missing; run `python {Path(__file__).name} --regen-checksums`")
    stored = json.loads(CHECKSUMS.read_text()).get(KEY)
    if stored is None:
        pytest.fail(f"{CHECKSUMS} has no {KEY!r} entry; run `python {Path(__file__).name} --regen-checksums`")
    return stored


def _as_hwc(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).double().numpy()


def _exposures(*pairs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Harness pairs -> the float64 (N, 2, 3, H, W) stack of their 8-bit values / 255 that `fuse` fuses."""
    return torch.stack([torch.from_numpy(quantize(torch.cat(images)).astype(np.float64) / 255.0)
                        for images in zip(*pairs)], dim=1)


def _he_boxfilter(image: np.ndarray, radius: int) -> np.ndarray:
    """He's `boxfilter.m` (the official code's box sum), line for line; sides of at least 2r + 1."""
    height, width = image.shape
    r = radius
    out = np.zeros_like(image)
    cum = np.cumsum(image, axis=0)
    out[:r + 1] = cum[r:2 * r + 1]
    out[r + 1:height - r] = cum[2 * r + 1:height] - cum[:height - 2 * r - 1]
    out[height - r:] = cum[height - 1] - cum[height - 2 * r - 1:height - r - 1]
    cum = np.cumsum(out, axis=1)
    out = np.zeros_like(image)
    out[:, :r + 1] = cum[:, r:2 * r + 1]
    out[:, r + 1:width - r] = cum[:, 2 * r + 1:width] - cum[:, :width - 2 * r - 1]
    out[:, width - r:] = cum[:, [width - 1]] - cum[:, width - 2 * r - 1:width - r - 1]
    return out


# -- parity with MEFB's FMMEF outputs (the official MATLAB code) ------------------------------------


@pytest.mark.parametrize("scene", MEFB_SCENES)
def test_matches_mefb_fmmef_bit_for_bit(shared_data, scene):
    reference = read_image_array(next((shared_data / "mefb" / scene).glob("fused_FMMEF.*")))
    ours = _mefb_fused(shared_data, scene)
    assert ours.shape == reference.shape and reference.dtype == np.uint8
    differing = int(np.count_nonzero(ours != reference))
    assert differing == 0, f"{scene}: {differing} values differ from MEFB's fused_FMMEF"


# -- regression checksums --------------------------------------------------------------------------


@pytest.mark.parametrize("scene", MEFB_SCENES)
def test_mefb_checksums(shared_data, scene):
    assert _sha256(_mefb_fused(shared_data, scene)) == _stored()[f"mefb/{scene}"]


def test_demo_checksums():
    stored = _stored()
    for name, digest in _demo_checksums().items():
        assert digest == stored[name], name


# -- properties ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coffee():
    return _demo_pairs()["coffee-00"]


def test_symmetric_in_exposure_order(coffee):
    over, under = coffee
    assert torch.equal(fuse(over, under), fuse(under, over))
    a, b = _as_hwc(over), _as_hwc(under)
    assert np.array_equal(fuse_float([a, b]), fuse_float([b, a]))


def test_channel_order_equivariant(coffee):
    over, under = coffee
    swap = [1, 0, 2]  # R <-> G keeps the float sums' order, so the equality is exact
    assert torch.equal(fuse(over[:, swap], under[:, swap]), fuse(over, under)[:, swap])
    cycle = [2, 0, 1]  # reorders the channel sums: equal up to rounding
    a, b = _as_hwc(over), _as_hwc(under)
    np.testing.assert_allclose(fuse_float([a[..., cycle], b[..., cycle]]), fuse_float([a, b])[..., cycle],
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize(("side", "levels"), [(1, 0), (8, 0), (32, 0), (63, 0), (64, 1), (127, 1), (128, 2),
                                               (512, 4), (1023, 4), (1024, 5), (2 ** 29, 24)])
def test_intermediate_levels_official_formula_clamped(side, levels):
    assert intermediate_levels(side, side + 7) == levels
    assert intermediate_levels(side + 7, side) == levels


@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, 7), (3, 5), (8, 8), (17, 9), (31, 47), (63, 64),
                                               (64, 64), (65, 97), (128, 128), (129, 255), (1024, 1024)])
def test_any_size_runs_and_keeps_shape(height, width):
    rng = np.random.default_rng(height * 10_000 + width)
    base = rng.random((height, width, 3))
    over, under = np.clip(base * 1.8, 0, 1), base * 0.3
    fused = fuse_float([over, under])
    assert fused.shape == (height, width, 3) and np.isfinite(fused).all()
    if height * width <= 128 * 128:  # the harness path too; the big sizes through the float core only, to stay quick
        tensors = [torch.from_numpy(e.transpose(2, 0, 1)[None].astype(np.float32)) for e in (over, under)]
        out = fuse(*tensors)
        assert out.shape == (1, 3, height, width) and out.dtype == torch.float32


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (8, 8), (20, 21), (48, 48)])
def test_small_images_fuse_sensibly(size, coffee):
    """Below 64 pixels (no intermediate level; the official demo crashes there) the result is still a fusion."""
    height, width = size
    a, b = (_as_hwc(e)[:height, :width] for e in coffee)
    # identical exposures come back almost unchanged
    assert np.abs(fuse_float([a, a]) - a).mean() < 0.01
    # the fused brightness lies between the two exposures'
    fused = np.clip(fuse_float([a, b]), 0, 1)
    assert b.mean() < fused.mean() < a.mean()
    # two flat exposures have no structure and (nearly) equal base weights: the mean of the two
    flat = fuse_float([np.full((height, width, 3), 0.2), np.full((height, width, 3), 0.6)])
    np.testing.assert_allclose(flat, 0.4, atol=1e-3)  # rounding noise in the flat maps, against eps


def test_three_exposures_in_float_core(coffee):
    over, under = (_as_hwc(e) for e in coffee)
    middle = np.clip(0.5 * (over + under), 0, 1)
    fused = fuse_float([over, middle, under])
    assert fused.shape == over.shape and np.isfinite(fused).all()
    np.testing.assert_allclose(fuse_float([under, over, middle]), fused, rtol=0, atol=1e-12)
    assert fuse_uint8([over, middle, under]).dtype == np.uint8


def test_box_sum_is_the_clipped_window_sum():
    rng = np.random.default_rng(0)
    for height, width, radius in [(1, 1, 4), (3, 5, 4), (12, 20, 4), (9, 9, 4), (7, 30, 1), (5, 6, 0)]:
        x = rng.random((height, width, 2))
        expected = np.array([[x[max(i - radius, 0):i + radius + 1, max(j - radius, 0):j + radius + 1].sum((0, 1))
                              for j in range(width)] for i in range(height)])
        np.testing.assert_allclose(box_sum(x, radius), expected, rtol=0, atol=1e-12)


def test_harness_output_is_the_8bit_result(coffee):
    over, under = coffee
    out = fuse(over, under)
    assert out.dtype == torch.float32 and out.shape == over.shape
    assert torch.equal(out, torch.from_numpy(quantize(out).astype(np.float32) / 255))
    expected = fuse_uint8([np.asarray(quantize(_as_hwc(e)), np.float64) / 255 for e in (over, under)])
    assert np.array_equal(_hwc_uint8(out), expected)
    batch = fuse(torch.cat([over, under]), torch.cat([under, over]))
    assert torch.equal(batch[:1], out) and torch.equal(batch[1:], out)


def test_adapter_class(coffee):
    method = FastSpdMef()
    assert method.name == "Fast-SPD-MEF" and method.config == FastSpdMefConfig()
    assert torch.equal(method.fuse(*coffee), fuse(*coffee))


@pytest.mark.parametrize(("over", "under", "message"), [
    (torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9), "differ in shape"),
    (torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 8, 8), r"\(N, 3, H, W\)"),
    (torch.zeros(3, 8, 8), torch.zeros(3, 8, 8), r"\(N, 3, H, W\)"),
    (np.zeros((1, 3, 8, 8)), torch.zeros(1, 3, 8, 8), "over must be a tensor"),
    (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "float"),
    (torch.zeros(1, 3, 0, 8), torch.zeros(1, 3, 0, 8), "empty"),
])
def test_malformed_pairs_raise(over, under, message):
    with pytest.raises(ValueError, match=message) as info:
        fuse(over, under)
    assert "Fast-SPD-MEF" in str(info.value)


@pytest.mark.parametrize(("exposures", "message"), [
    ([np.zeros((8, 8, 3))], "at least 2"),
    ([np.zeros((8, 8, 3)), np.zeros((8, 9, 3))], "differ in shape"),
    ([np.zeros((8, 8)), np.zeros((8, 8))], r"\(H, W, 3\)"),
    (np.zeros((2, 8, 8, 3)), "list"),
])
def test_float_core_rejects_malformed_input(exposures, message):
    with pytest.raises(ValueError, match=message):
        fuse_float(exposures)


def test_config_validated():
    with pytest.raises(ValueError, match="radius_fine"):
        FastSpdMefConfig(radius_fine=-1)
    with pytest.raises(ValueError, match="p must be positive"):
        FastSpdMefConfig(p=0.0)


# -- float64 arithmetic: MATLAB's order of operations, whatever the strips, batches or device ------

FLOAT64_DIGEST = "3ccaade0c14688fb5e9980c60c79087760e3d8927a83114fd8bb79cac77a3234"
"""SHA-256 of `fuse_tensor`'s float64 (1, 3, 96, 96) result on the demo pair coffee-00 (8-bit inputs).

Any change in the order of a sum, a rounding (sqrt, division, the powers) or a constant changes it,
though rarely an 8-bit output. It depends on no libm but through the arctangent of the coarsest level."""


def test_float64_result_is_pinned(coffee):
    fused = fuse_tensor(_exposures(coffee))
    assert fused.dtype == torch.float64 and fused.shape == (1, 3, 96, 96)
    assert hashlib.sha256(fused.contiguous().numpy().tobytes()).hexdigest() == FLOAT64_DIGEST


@pytest.mark.parametrize(("height", "width"), [(9, 9), (10, 23), (37, 64), (101, 57)])
def test_box_sum_is_he_boxfilter_bit_for_bit(height, width):
    """Running sums down the rows, then along them, subtracted as `boxfilter.m` does: equal bits."""
    rng = np.random.default_rng(height * 1000 + width)
    planes = rng.random((3, height, width)) * rng.choice([1e-3, 1.0, 1e3], size=(3, 1, 1))
    expected = np.stack([_he_boxfilter(plane, 4) for plane in planes])
    t = torch.from_numpy(planes)
    for rows, loops in [(None, None), (2, False), (6, True), (height, True), (1000, False)]:
        assert np.array_equal(box_sum_hw(t, 4, rows=rows, loops=loops).numpy(), expected), (rows, loops)
    assert np.array_equal(box_sum(planes.transpose(1, 2, 0), 4), expected.transpose(1, 2, 0))


@pytest.mark.parametrize(("height", "width"), [(1, 1), (5, 3), (64, 64), (129, 70)])
def test_strips_and_loops_do_not_change_a_bit(height, width, coffee):
    """Any strip height, and running sums by loops of additions as on CUDA (one strip, `loops`)."""
    over, under = (e[:, :, :height, :width] for e in coffee)
    if height > 96 or width > 96:
        over, under = (torch.nn.functional.interpolate(e, size=(height, width), mode="bilinear") for e in coffee)
    x = _exposures((over, under))
    expected = fuse_tensor(x)
    for rows, loops in [(2, False), (6, False), (height, True), (10_000, False), (64, True)]:
        assert torch.equal(fuse_tensor(x, rows=rows, loops=loops), expected), (rows, loops)


def test_three_exposures_and_thread_settings(coffee):
    """K = 3 through the batched path; torch's thread count changes no bit and is restored after."""
    over, under = coffee
    exposures = [torch.from_numpy(quantize(e).astype(np.float64) / 255.0) for e in (over, (over + under) / 2, under)]
    x = torch.stack(exposures, dim=1)[..., :70, :50]  # (1, 3, 3, 70, 50): three exposures
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = fuse_tensor(x)
        torch.set_num_threads(3)
        several = fuse_tensor(x)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(single, several)
    reordered = fuse_tensor(x[:, [2, 0, 1]])  # sums in another order: equal up to rounding
    torch.testing.assert_close(reordered, single, rtol=0, atol=1e-12)


def test_batch_equals_each_pair():
    pairs = list(_demo_pairs().values())
    over, under = (torch.cat(images) for images in zip(*pairs))
    batch = fuse(over, under)
    assert batch.shape == (3, 3, 96, 96)
    for n, pair in enumerate(pairs):
        assert torch.equal(batch[n:n + 1], fuse(*pair)), n
    floats = fuse_tensor(_exposures(*pairs))
    for n, pair in enumerate(pairs):
        assert torch.equal(floats[n:n + 1], fuse_tensor(_exposures(pair))), n


def test_integer_powers_are_correctly_rounded():
    rng = np.random.default_rng(7)
    values = np.concatenate([np.sqrt(rng.random(4000)) * 15.6 + 1e-12, rng.random(500) * 1e-6 + 1e-12])
    fourth, cube = integer_powers(torch.from_numpy(values), (4, 3))  # p = 4: x^4 as the square of x^2
    chain = integer_powers(torch.from_numpy(values), (2, 3, 4, 5))  # one factor of x at a time
    for n, power in ((4, fourth), (3, cube), *zip((2, 3, 4, 5), chain)):
        exact = [float(Fraction(float(v)) ** n) for v in values]  # Fraction -> float rounds correctly
        assert np.array_equal(power.numpy(), np.array(exact)), n


def test_sqrt_is_correctly_rounded():
    """torch's CPU sqrt (MKL) is not correctly rounded on every machine; `_sqrt_` (numpy's, on CPU) is."""
    values = np.random.default_rng(8).random(100_000) * 0.01
    assert np.array_equal(_sqrt_(torch.from_numpy(values.copy())).numpy(), np.sqrt(values))


def test_inputs_are_left_alone(coffee):
    over, under = (e.double() for e in coffee)
    before = over.clone(), under.clone()
    fuse(over, under)
    assert torch.equal(over, before[0]) and torch.equal(under, before[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu_bit_for_bit(shared_data_or_none):
    """The same code on CUDA (one strip, columns by a loop, divisions by device constants) gives the
    CPU's bits: float64 on a demo pair, 8-bit on a batch and on every MEFB scene present."""
    pairs = list(_demo_pairs().values())
    x = _exposures(*pairs)
    assert torch.equal(fuse_tensor(x.cuda()).cpu(), fuse_tensor(x))
    over, under = (torch.cat(images) for images in zip(*pairs))
    assert torch.equal(fuse(over.cuda(), under.cuda()).cpu(), fuse(over, under))
    if shared_data_or_none is not None:
        for scene in MEFB_SCENES:
            folder = shared_data_or_none / "mefb" / scene
            over, under = (read_image(next(folder.glob(f"{role}.*"))) for role in ("over", "under"))
            assert np.array_equal(_hwc_uint8(fuse(over.cuda(), under.cuda()).cpu()),
                                  _mefb_fused(shared_data_or_none, scene)), scene


@pytest.fixture
def shared_data_or_none():
    root = Path(os.environ.get("CFANET_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
    return root if (root / "mefb").is_dir() else None


# -- regeneration ----------------------------------------------------------------------------------


def regenerate_checksums() -> None:
    """Recompute this method's checksums and rewrite only its key of the shared file.

    MEFB entries need ../shared/data (or $CFANET_SHARED_DATA); where it is absent the stored MEFB
    entries are kept as they are.
    """
    root = Path(os.environ.get("CFANET_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
    entries = _demo_checksums()
    have_mefb = (root / "mefb").is_dir()
    if have_mefb:
        entries.update({f"mefb/{scene}": _sha256(_mefb_fused(root, scene)) for scene in MEFB_SCENES})
    else:
        print(f"no MEFB data at {root}: keeping the stored mefb/ entries", file=sys.stderr)
    data = json.loads(CHECKSUMS.read_text()) if CHECKSUMS.is_file() else {}  # read last: others may write too
    if not have_mefb:
        entries.update({k: v for k, v in data.get(KEY, {}).items() if k.startswith("mefb/")})
    data[KEY] = dict(sorted(entries.items()))
    tmp = CHECKSUMS.with_name(CHECKSUMS.name + ".part")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, CHECKSUMS)
    print(f"wrote {len(data[KEY])} {KEY} checksums to {CHECKSUMS}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--regen-checksums"]:
        sys.exit(f"usage: python {Path(__file__).name} --regen-checksums")
    regenerate_checksums()
