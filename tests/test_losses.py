"""cfanet/losses.py: SSIM parity with pytorch_msssim, the coupled SSIM loss, gradients.

Parity with pytorch_msssim (the package CF-Net's `train.py` imports): pytorch_msssim 1.0.0 (PyPI),
installed in a separate virtual environment outside the repository, never in the project's:

    python -m venv /tmp/cfnet_venv && /tmp/cfnet_venv/bin/pip install --no-deps pytorch_msssim
    echo <project venv>/lib/python3.11/site-packages > /tmp/cfnet_venv/lib/python3.11/site-packages/main.pth
    PYTHONPATH=. /tmp/cfnet_venv/bin/python tests/test_losses.py --regen      # rewrites the fixture
    PYTORCH_MSSSIM_SITE=/tmp/cfnet_venv/lib/python3.11/site-packages pytest -q tests/test_losses.py

`tests/fixtures/ssim_pytorch_msssim.json` holds, for each case of `CASES` (inputs made from a
numpy seed, so only the numbers are stored), pytorch_msssim's `ssim(...)` value and two
projections of its gradient with respect to the first image, and the official CF-Net loss
(`train.py`'s loop: `- ssim(sr_over[0], h_over, win_size=7, nonnegative_ssim=True) - ssim(sr_under[0],
h_under, ...) + 2.0`, then the same with `h` for every later output) on a 4 + 4 output case.
`test_ssim_matches_recorded_pytorch_msssim` always runs against the file;
`test_ssim_matches_pytorch_msssim_live` (skipped unless $PYTORCH_MSSSIM_SITE names a
site-packages holding pytorch_msssim) compares values and every gradient element directly.
Result when written: identical SSIM values and identical gradients, element for element
(max |difference| 0 in every case, float32 and float64: the same operations in the same order),
and 1.2e-7 on the official loss (0.39222; a sum of eight terms, added in another order).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cfanet.losses import CoupledLossWeights, coupled_ssim_loss, coupled_ssim_terms, gaussian_taps, ssim

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "ssim_pytorch_msssim.json"

# name: (seed, shape, relation of y to x, dtype, keyword arguments beyond data_range=255)
CASES = {
    "noisy_f32": (1, (2, 3, 24, 40), "noisy", "float32", {"win_size": 7, "nonnegative_ssim": True}),
    "independent_f32": (2, (1, 3, 17, 23), "independent", "float32", {"win_size": 7, "nonnegative_ssim": True}),
    "inverted_nonneg": (3, (2, 3, 16, 16), "inverted", "float32", {"win_size": 7, "nonnegative_ssim": True}),
    "inverted_signed": (3, (2, 3, 16, 16), "inverted", "float32", {"win_size": 7, "nonnegative_ssim": False}),
    "smooth_f64": (4, (1, 3, 21, 19), "smooth", "float64", {"win_size": 7, "nonnegative_ssim": True}),
    "win11_per_image": (5, (3, 3, 20, 22), "noisy", "float32",
                        {"win_size": 11, "nonnegative_ssim": False, "size_average": False}),
}


def case_images(seed: int, shape: tuple[int, ...], relation: str, dtype: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Two image batches on [0, 255] from a numpy seed: x uniform noise (blurred for "smooth"), y
    related to x by `relation` ("noisy": x + N(0, 60) clipped; "independent"; "inverted": 255 - x
    plus a little noise, which gives negative SSIM; "smooth": x + N(0, 8) clipped)."""
    rng = np.random.default_rng(seed)
    x = rng.random(shape) * 255
    if relation == "smooth":
        x = (x + np.roll(x, 1, -1) + np.roll(x, 1, -2) + np.roll(x, (1, 1), (-2, -1))) / 4
    if relation in ("noisy", "smooth"):
        y = np.clip(x + rng.normal(0, 60 if relation == "noisy" else 8, shape), 0, 255)
    elif relation == "independent":
        y = rng.random(shape) * 255
    elif relation == "inverted":
        y = np.clip(255 - x + rng.normal(0, 5, shape), 0, 255)
    else:
        raise ValueError(relation)
    return torch.from_numpy(x.astype(dtype)), torch.from_numpy(y.astype(dtype))


def gradient_projections(grad: torch.Tensor) -> list[float]:
    """Two numbers that pin a gradient down: its L2 norm and its dot product with a fixed ramp."""
    ramp = torch.linspace(-1, 1, grad.numel(), dtype=torch.float64).view_as(grad)
    return [float(grad.double().norm()), float((grad.double() * ramp).sum())]


def loss_case() -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Four over and four under outputs with their targets, (2, 3, 20, 18) on [0, 255], float32."""
    rng = np.random.default_rng(7)
    shape = (2, 3, 20, 18)

    def image(base: np.ndarray | None = None, sigma: float = 0.0) -> torch.Tensor:
        values = rng.random(shape) * 255 if base is None else np.clip(base + rng.normal(0, sigma, shape), 0, 255)
        return torch.from_numpy(values.astype(np.float32))

    gt = image()
    hr_over, hr_under = image(gt.numpy(), 30), image(gt.numpy(), 40)
    outputs_over = [image(hr_over.numpy(), 25)] + [image(gt.numpy(), s) for s in (30, 20, 10)]
    outputs_under = [image(hr_under.numpy(), 25)] + [image(gt.numpy(), s) for s in (35, 25, 15)]
    return outputs_over, outputs_under, hr_over, hr_under, gt


def official_loss(msssim, outputs_over, outputs_under, hr_over, hr_under, gt) -> torch.Tensor:
    """CF-Net `train.py`'s loss, verbatim but for the loop bound (`num_CFBs = 3` there)."""
    loss = - msssim(outputs_over[0], hr_over, win_size=7, nonnegative_ssim=True) - msssim(
        outputs_under[0], hr_under, win_size=7, nonnegative_ssim=True) + 2.0
    for j in range(len(outputs_over) - 1):
        loss += - msssim(outputs_over[j + 1], gt, win_size=7, nonnegative_ssim=True) - msssim(
            outputs_under[j + 1], gt, win_size=7, nonnegative_ssim=True) + 2.0
    return loss


def _ours(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    seed, shape, relation, dtype, kwargs = CASES[name]
    x, y = case_images(seed, shape, relation, dtype)
    x.requires_grad_(True)
    value = ssim(x, y, data_range=255, **kwargs)
    value.sum().backward()
    return value.detach(), x.grad


def make_fixture(path: Path = FIXTURE) -> None:
    """Record pytorch_msssim's numbers for every case (needs pytorch_msssim importable)."""
    import pytorch_msssim

    record = {"pytorch_msssim": pytorch_msssim.__version__ if hasattr(pytorch_msssim, "__version__") else "1.0.0",
              "cases": {}}
    for name, (seed, shape, relation, dtype, kwargs) in CASES.items():
        x, y = case_images(seed, shape, relation, dtype)
        x.requires_grad_(True)
        value = pytorch_msssim.ssim(x, y, data_range=255, **kwargs)
        value.sum().backward()
        record["cases"][name] = {"ssim": value.detach().double().flatten().tolist(),
                                 "grad": gradient_projections(x.grad)}
    record["official_loss"] = float(official_loss(pytorch_msssim.ssim, *loss_case()))
    path.write_text(json.dumps(record, indent=1) + "\n")


# -- parity with pytorch_msssim -------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CASES))
def test_ssim_matches_recorded_pytorch_msssim(name):
    expected = json.loads(FIXTURE.read_text())["cases"][name]
    value, grad = _ours(name)
    np.testing.assert_allclose(value.double().flatten().numpy(), expected["ssim"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(gradient_projections(grad), expected["grad"], rtol=1e-5, atol=1e-9)


def test_official_loss_matches_recorded_value():
    expected = json.loads(FIXTURE.read_text())["official_loss"]
    assert abs(float(coupled_ssim_loss(*loss_case(), data_range=255)) - expected) <= 1e-6


def test_cases_cover_clipping_and_negative_ssim():
    record = json.loads(FIXTURE.read_text())["cases"]
    assert record["inverted_signed"]["ssim"][0] < -0.1 and record["inverted_nonneg"]["ssim"][0] == 0.0
    assert 0.2 < record["noisy_f32"]["ssim"][0] < 0.95
    assert len(record["win11_per_image"]["ssim"]) == 3


@pytest.fixture()
def live_msssim(monkeypatch):
    site = os.environ.get("PYTORCH_MSSSIM_SITE")
    if not site:
        pytest.skip("set PYTORCH_MSSSIM_SITE to a site-packages holding pytorch_msssim to compare live")
    monkeypatch.syspath_prepend(site)
    import pytorch_msssim

    return pytorch_msssim


@pytest.mark.parametrize("name", list(CASES))
def test_ssim_matches_pytorch_msssim_live(name, live_msssim):
    seed, shape, relation, dtype, kwargs = CASES[name]
    x, y = case_images(seed, shape, relation, dtype)
    x.requires_grad_(True)
    expected = live_msssim.ssim(x, y, data_range=255, **kwargs)
    expected.sum().backward()
    value, grad = _ours(name)
    assert (value - expected.detach()).abs().max() <= 1e-6
    assert (grad - x.grad).abs().max() <= 1e-5 * x.grad.abs().max()
    loss = official_loss(live_msssim.ssim, *loss_case())
    assert abs(float(coupled_ssim_loss(*loss_case(), data_range=255)) - float(loss)) <= 1e-6


# -- properties ---------------------------------------------------------------------------------------------

def test_window_taps():
    taps = gaussian_taps(7, 1.5)
    assert taps.dtype == torch.float32 and abs(float(taps.sum()) - 1) < 1e-6
    assert torch.equal(taps, taps.flip(0)) and int(taps.argmax()) == 3
    with pytest.raises(ValueError, match="odd"):
        gaussian_taps(8, 1.5)


def test_identical_images_score_one_and_range_scaling_agrees():
    x, y = case_images(1, (1, 3, 16, 16), "noisy", "float64")
    assert float(ssim(x, x, data_range=255)) == pytest.approx(1.0, abs=1e-12)
    assert float(ssim(x, y, data_range=255)) == pytest.approx(float(ssim(x / 255, y / 255, data_range=1)), abs=1e-12)
    per_image = ssim(x.repeat(2, 1, 1, 1), y.repeat(2, 1, 1, 1), data_range=255, size_average=False)
    assert per_image.shape == (2,) and torch.allclose(per_image, ssim(x, y, data_range=255).expand(2))


@pytest.mark.parametrize("x, y, message", [
    (torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9), "differ in shape"),
    (torch.rand(1, 3, 6, 8), torch.rand(1, 3, 6, 8), "smaller than the 7x7 window"),
    (torch.rand(3, 8, 8), torch.rand(3, 8, 8), r"\(N, C, H, W\)"),
    (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "float"),
])
def test_malformed_inputs_raise(x, y, message):
    with pytest.raises(ValueError, match=message):
        ssim(x, y, data_range=255)


def test_data_range_is_required():
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(TypeError):
        ssim(x, x)   # noqa: the point of the test
    with pytest.raises(TypeError):
        coupled_ssim_loss([x], [x], x, x, x)


# -- the coupled loss -----------------------------------------------------------------------------------------

def test_coupled_loss_is_the_weighted_sum_of_its_terms():
    outputs_over, outputs_under, hr_over, hr_under, gt = loss_case()
    terms = coupled_ssim_terms(outputs_over, outputs_under, hr_over, hr_under, gt, data_range=255)
    assert list(terms) == ["over_0", "under_0", "over_1", "under_1", "over_2", "under_2", "over_3", "under_3"]
    assert float(terms["over_0"]) == pytest.approx(1 - float(ssim(outputs_over[0], hr_over, data_range=255)))
    assert float(terms["under_2"]) == pytest.approx(1 - float(ssim(outputs_under[2], gt, data_range=255)))
    plain = coupled_ssim_loss(outputs_over, outputs_under, hr_over, hr_under, gt, data_range=255)
    assert float(plain) == pytest.approx(float(sum(terms.values())), abs=1e-6)
    weights = CoupledLossWeights(over=0.5, under=2.0, iterations=(1.0, 0.0, 3.0))
    weighted = coupled_ssim_loss(outputs_over, outputs_under, hr_over, hr_under, gt, weights, data_range=255)
    expected = (0.5 * terms["over_0"] + 2 * terms["under_0"] + terms["over_1"] + terms["under_1"]
                + 3 * (terms["over_3"] + terms["under_3"]))
    assert float(weighted) == pytest.approx(float(expected), abs=1e-6)


def test_coupled_loss_rejects_inconsistent_outputs_and_weights():
    outputs_over, outputs_under, hr_over, hr_under, gt = loss_case()
    with pytest.raises(ValueError, match="same number"):
        coupled_ssim_loss(outputs_over, outputs_under[:3], hr_over, hr_under, gt, data_range=255)
    with pytest.raises(ValueError, match="2 iteration weights for 3 iterations"):
        coupled_ssim_loss(outputs_over, outputs_under, hr_over, hr_under, gt,
                          CoupledLossWeights(iterations=(1.0, 1.0)), data_range=255)


def test_gradient_descent_reduces_the_loss():
    """A few Adam steps on free images (the outputs as parameters) lower the coupled loss."""
    outputs_over, outputs_under, hr_over, hr_under, gt = loss_case()
    params = [torch.nn.Parameter(o.clone()) for o in outputs_over + outputs_under]
    optimiser = torch.optim.Adam(params, lr=2.0)
    losses = []
    for _ in range(8):
        loss = coupled_ssim_loss(params[:4], params[4:], hr_over, hr_under, gt, data_range=255)
        losses.append(float(loss.detach()))
        optimiser.zero_grad()
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in params)
        optimiser.step()
    assert losses[-1] < 0.9 * losses[0]


if __name__ == "__main__":
    if sys.argv[1:] == ["--regen"]:
        make_fixture()
        print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")
    else:
        sys.exit("usage: python tests/test_losses.py --regen")
