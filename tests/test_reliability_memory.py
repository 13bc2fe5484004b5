"""Out of memory during a stage: the runner halves the model's tile and retries instead of failing.

On the CPU the device's allocation failure is simulated: the model's protocol raises
`torch.cuda.OutOfMemoryError` (or a RuntimeError saying "CUDA out of memory", as older PyTorch
does) whenever one call would process more than a given number of input pixels per side, as a GPU
with little free memory would. The retry must then go down to a tile that fits, and the output
must equal the untiled output within the model's tested tiling tolerance. On a CUDA machine one
more test makes the GPU really run out of memory.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import torch

from baselines.sr.srfbn import SRFBN
from pipelines.config import parse_config
from pipelines.graph import Stage
from pipelines.runner import Runner, StageError, is_out_of_memory

from test_runner import seeded_weights

SRFBN_TILING_TOLERANCE = 1e-4  # tiled vs untiled, overlap 32 (baselines/sr/srfbn.py)


def _runner(tmp_path: Path, hr_size: int = 64, device: str = "cpu") -> Runner:
    text = f"""
[profiles.demo]
output_dir = "{tmp_path / 'out'}"
cache_dir = "{tmp_path / 'cache'}"
[profiles.demo.dataset]
num_scenes = 1
hr_size = {hr_size}
[profiles.demo.runtime]
device = "{device}"
"""
    config = parse_config(tomllib.loads(text), source="test.toml", base_dir=tmp_path)
    logged = []
    runner = Runner(config, weights_trainer=seeded_weights, show_progress=False, log=logged.append)
    runner.logged = logged
    return runner


def _limit_memory(monkeypatch, cls, max_side: int, error=None):
    """Make `cls.forward_protocol` fail like a full GPU when its input is larger than `max_side`
    pixels on a side; returns the list of input sides it was called with."""
    original = cls.forward_protocol
    calls = []

    def limited(self, lr):
        side = max(lr.shape[-2:])
        calls.append(side)
        if side > max_side:
            raise error or torch.cuda.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate 2.00 GiB (input {side} px per side)")
        return original(self, lr)

    monkeypatch.setattr(cls, "forward_protocol", limited)
    return calls


def _srfbn(runner: Runner):
    runner.prepare_weights(["SRFBN"])
    return runner.worker().instance("SRFBN", 2)


STAGE = Stage("k" * 64, "SRFBN", "sr", ("input",), "scene-0")


@pytest.mark.parametrize("error", [None, RuntimeError("CUDA out of memory. Tried to allocate 1.50 GiB")])
def test_out_of_memory_retries_with_halved_tiles_and_matches_untiled(tmp_path, monkeypatch, error):
    runner = _runner(tmp_path)
    instance = _srfbn(runner)
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    untiled = instance.upscale(x)
    calls = _limit_memory(monkeypatch, SRFBN, max_side=64, error=error)
    output, retried = runner.compute_stage(STAGE, 2, [x])
    # whole image (256) fails, 128-pixel tiles fail, 64-pixel tiles fit
    assert retried == [128, 64] and instance.tile == 64
    assert calls[0] == 256 and calls[1] == 128 and set(calls[2:]) == {64}
    assert output.shape == untiled.shape
    difference = (output - untiled).abs().max().item()
    assert difference < SRFBN_TILING_TOLERANCE
    assert any("retrying with 64-pixel tiles" in line for line in runner.logged)
    print(f"\nout-of-memory retry: tiles {retried}, max |tiled - untiled| = {difference:.2e}")


def test_out_of_memory_below_the_minimum_tile_fails_with_a_clear_message(tmp_path, monkeypatch):
    runner = _runner(tmp_path)
    _srfbn(runner)
    _limit_memory(monkeypatch, SRFBN, max_side=8)
    with pytest.raises(StageError) as info:
        runner.compute_stage(STAGE, 2, [torch.rand(1, 3, 256, 256)])
    message = str(info.value)
    assert "out of memory" in message and "SRFBN" in message and "'scene-0'" in message
    assert "64-pixel tiles" in message and "\n" not in message  # SRFBN's overlap 32: 64 is its minimum


def test_untileable_method_out_of_memory_says_so(tmp_path, monkeypatch):
    from baselines.mef.mefnet import MEFNet

    runner = _runner(tmp_path)
    runner.prepare_weights(["MEF-Net"])

    def full(self, over, under):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(MEFNet, "fuse", full)
    stage = Stage("m" * 64, "MEF-Net", "mef", ("a", "b"), "scene-0")
    with pytest.raises(StageError, match="MEF-Net on scene 'scene-0': it cannot be tiled"):
        runner.compute_stage(stage, 2, [torch.rand(1, 3, 16, 16)] * 2)


def test_other_errors_are_not_retried():
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 8 GB"))
    assert not is_out_of_memory(RuntimeError("size mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_a_run_survives_out_of_memory_in_a_stage(tmp_path, monkeypatch):
    """A whole run: SRFBN runs out of memory on the 128x128 fused LR image, is retried with 64-pixel
    tiles, the run finishes, records the retry, and its scores match a run without the failure."""
    clean = _runner(tmp_path / "clean", hr_size=256).run(["MGFF+SRFBN"])
    calls = _limit_memory(monkeypatch, SRFBN, max_side=64)
    runner = _runner(tmp_path / "oom", hr_size=256)
    summary = runner.run(["MGFF+SRFBN"])
    assert summary.stages_computed == 2 and summary.memory_retries == [("SRFBN", "coffee-00", [64])]
    assert calls[0] == 128 and set(calls[1:]) == {64}
    retried = dict(((m, metric, c), v) for _, m, metric, c, v in summary.results)
    for _, method, metric, convention, value in clean.results:
        assert retried[(method, metric, convention)] == pytest.approx(value, abs=1e-3)
    import json
    import sqlite3

    manifest = json.loads(sqlite3.connect(summary.database).execute("SELECT manifest FROM runs").fetchone()[0])
    assert manifest["memory_retries"] == [["SRFBN", "coffee-00", [64]]]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device to run out of its memory")
def test_real_cuda_out_of_memory_is_retried_with_smaller_tiles(tmp_path):
    """Fill the GPU until an untiled SRFBN forward on a 2048x2048 image (about 14 GB of activations)
    cannot fit, then let the runner retry with smaller tiles."""
    runner = _runner(tmp_path, device="cuda")
    instance = _srfbn(runner)
    instance.bytes_per_input_pixel = 1.0  # the automatic tile would think everything fits
    x = torch.rand(1, 3, 2048, 2048, generator=torch.Generator().manual_seed(0))
    torch.cuda.empty_cache()
    hog, block = [], 256 * 1024 ** 2
    try:
        while torch.cuda.mem_get_info()[0] > 1536 * 1024 ** 2 + block:  # leave about 1.5 GiB
            hog.append(torch.empty(block, dtype=torch.uint8, device="cuda"))
        output, retried = runner.compute_stage(STAGE, 2, [x])
    finally:
        hog.clear()
        torch.cuda.empty_cache()
    if not retried:
        pytest.skip("the GPU did not run out of memory with about 1.5 GiB free")
    assert output.shape == (1, 3, 4096, 4096) and instance.tile == retried[-1] < 2048
    with torch.no_grad():
        instance.tile = -1
        crop = instance.upscale(x[..., :256, :256].cuda()).cpu()
    # away from the crop's own border, the tiled output equals the untiled forward of the crop
    # (loose bound: cuDNN may use TF32 on the GPU)
    difference = (output[..., :384, :384].cpu() - crop[..., :384, :384]).abs().max().item()
    assert difference < 1e-2
    print(f"\nreal CUDA out-of-memory retry on {torch.cuda.get_device_name(0)}: tiles {retried}, "
          f"difference {difference:.1e}")
