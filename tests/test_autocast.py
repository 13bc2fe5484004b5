"""Mixed precision: a method may run under autocast only where that changes PSNR by < 0.05 dB.

Every deep method's class lists the autocast dtypes it tolerates (`autocast_dtypes`); the runner
autocasts on CUDA only to those, and keeps the rest (and every metric) in fp32. This test is the
evidence for each list: on the demo scenes it runs each method in fp32 and under CPU autocast (the
same bf16/fp16 operator lists as CUDA), with the small configurations' seeded weights and, where the
shared data holds them, the official MEF-Net and U2Fusion weights, and checks

- a listed dtype: |PSNR(autocast) - PSNR(fp32)| < 0.05 dB against the reference on every scene,
  and the autocast output itself within 35 dB PSNR of the fp32 output (so the criterion is not met
  merely because both outputs are far from the reference; CPU bf16 kernels differ between
  processors: DBPN's bf16 output measured 38.8 dB from fp32 on one, above 40 dB on another);
- an unlisted dtype of a deep method: it really fails the criterion, so the list is not
  needlessly short.

bf16 (the default `amp_dtype`) is checked on all six demo scenes of the demo profile; fp16, whose
CPU kernels are slow, on the first two (fp16 keeps three more mantissa bits than bf16; measured on
all six scenes it changed PSNR less than bf16 for every listed method).

References: the ground truth for joint methods; for SR models, which upscale the over-exposed LR
image, its HR version `gt_over` (the ground truth where a scene lacks it); for MEF methods the
ground truth downsampled (area) to the LR size.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cfanet.data import open_dataset
from cfanet.metrics.psnr_ssim import psnr
from pipelines.registry import method, methods

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
TOLERANCE_DB = 0.05
CLOSENESS_DB = 35.0
OFFICIAL = {"MEF-Net": Path("weights") / "mefnet" / "MEFNet_release.pt",
            "U2Fusion": Path("weights") / "u2fusion" / "model.ckpt"}
DEEP = [name for name, entry in methods().specs.items() if entry.deep]


@pytest.fixture(scope="module")
def scenes():
    dataset = open_dataset("demo", 2, num_scenes=6, hr_size=192, seed=0)
    return [dataset.load(name) for name in dataset.names()]


def _model(name: str, weights: Path | None):
    entry = method(name)
    if weights is not None:
        return entry.load(weights)
    return entry.create(2, "small", seed=0)


def _run(model, kind: str, scene) -> torch.Tensor:
    if kind == "sr":
        return model.upscale(scene.over)
    if kind == "mef":
        return model.fuse(scene.over, scene.under)
    return model.fuse_upscale(scene.over, scene.under)


def _reference(kind: str, scene, output: torch.Tensor) -> torch.Tensor:
    if kind == "sr":
        return scene.gt_over if scene.gt_over is not None else scene.gt
    if kind == "mef":
        return F.interpolate(scene.gt, size=output.shape[-2:], mode="area")
    return scene.gt


def autocast_effect(name: str, dtype: str, scenes, weights: Path | None = None) -> tuple[float, float]:
    """(largest |PSNR change| in dB over the scenes, smallest PSNR of the autocast output against
    the fp32 output) for `name` under CPU autocast to `dtype`."""
    kind = method(name).kind
    model = _model(name, weights)
    worst_change, closest = 0.0, float("inf")
    for scene in scenes:
        with torch.no_grad():
            full = _run(model, kind, scene).float()
            with torch.autocast("cpu", dtype=DTYPES[dtype]):
                reduced = _run(model, kind, scene).float()
        reference = _reference(kind, scene, full)
        change = abs(psnr(reduced, reference, convention="paper", scale=2) -
                     psnr(full, reference, convention="paper", scale=2))
        worst_change = max(worst_change, change)
        closest = min(closest, psnr(reduced, full, convention="paper", scale=2))
    return worst_change, closest


def _cases():
    for name in DEEP:
        for dtype in DTYPES:
            yield pytest.param(name, dtype, id=f"{name}-{dtype}")


@pytest.mark.parametrize("name, dtype", list(_cases()))
def test_autocast_lists_match_the_psnr_criterion(name, dtype, scenes):
    listed = dtype in method(name).autocast_dtypes
    change, closest = autocast_effect(name, dtype, scenes if dtype == "bf16" else scenes[:2])
    print(f"\n{name} {dtype}: |dPSNR| <= {change:.4f} dB, autocast vs fp32 >= {closest:.1f} dB "
          f"({'listed' if listed else 'stays fp32'})")
    if listed:
        assert change < TOLERANCE_DB and closest > CLOSENESS_DB
    else:
        assert change >= TOLERANCE_DB


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_unlisted_methods_also_fail_with_their_official_weights(name, scenes, shared_data):
    """The MEF-Net and U2Fusion lists are empty with the official weights too (not only seeded ones)."""
    assert method(name).autocast_dtypes == ()
    change, _ = autocast_effect(name, "bf16", scenes, weights=shared_data / OFFICIAL[name])
    print(f"\n{name} official bf16: |dPSNR| <= {change:.4f} dB")
    assert change >= TOLERANCE_DB


def test_runner_autocasts_only_listed_methods_and_only_on_cuda():
    from pipelines.compute import inference_precision
    from pipelines.config import RuntimeConfig

    amp = RuntimeConfig(amp=True, amp_dtype="fp16")
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    for name in DEEP:
        spec = method(name)
        expected = "fp16" if "fp16" in spec.autocast_dtypes else "fp32"
        assert inference_precision(spec, amp, cuda) == expected
        assert inference_precision(spec, amp, cpu) == "fp32"
        assert inference_precision(spec, RuntimeConfig(amp=False), cuda) == "fp32"
    assert inference_precision(method("MEF-Net"), amp, cuda) == "fp32"
    assert inference_precision(method("SwinIR"), amp, cuda) == "fp16"
