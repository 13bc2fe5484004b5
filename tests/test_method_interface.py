"""One method interface: every registered method runs through `apply`, and the runtime options reach
every method that supports them through the runner's own stage worker."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from cfanet.checkpoint import sha256_file
from pipelines.cli import main
from pipelines.compute import StageWorker, WeightsFile
from pipelines.config import RuntimeConfig
from pipelines.model_files import save_model_checkpoint
from pipelines.registry import methods

SPECS = list(methods().specs.values())
TILE = 96  # LR pixels; larger than every tiling method's default overlap


def _weights(spec, tmp_path) -> WeightsFile | None:
    if not spec.deep:
        return None
    model = spec.create(2, "small", seed=0)
    path = save_model_checkpoint(model.network, tmp_path / f"{spec.name}.pt", {"method": spec.name, "size": "small",
                                                                               "scale": 2})
    return WeightsFile(str(path), sha256_file(path), "small")


def _inputs(spec, height: int, width: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(1, 3, height + 4, width + 4, generator=generator), 5, 1)
    over = (0.35 + 0.6 * smooth).clamp(0, 1)
    under = (0.05 + 0.3 * smooth.flip(-1)).clamp(0, 1)
    return [over] if spec.kind == "sr" else [over, under]


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_every_method_works_with_apply(spec, tmp_path, capsys):
    weights = _weights(spec, tmp_path)
    inputs = _inputs(spec, 20, 24)
    files = []
    for role, image in zip(("over", "under"), inputs):
        files.append(tmp_path / f"{role}.png")
        cv2.imwrite(str(files[-1]), np.ascontiguousarray((image[0].permute(1, 2, 0).flip(-1).numpy() * 255).round()
                                                         .astype(np.uint8)))
    args = ["--input", str(files[0])] if spec.kind == "sr" else ["--over", str(files[0]), "--under", str(files[1])]
    if weights is not None:
        args += ["--weights", weights.path]
    out = tmp_path / "out.png"
    assert main(["apply", spec.name, *args, "-o", str(out)]) == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    factor = 1 if spec.kind == "mef" else 2
    assert summary["kind"] == spec.kind and summary["size"] == [20 * factor, 24 * factor]
    assert cv2.imread(str(out)).shape == (20 * factor, 24 * factor, 3)


TILING = [s for s in SPECS if s.tiles]


@pytest.mark.parametrize("spec", TILING, ids=[s.name for s in TILING])
def test_tile_size_reaches_every_tiling_method(spec, tmp_path):
    """`runtime.tile_size` reaches each tiling method through the stage worker: its convolutions see
    tiles (not the whole image) and the output stays within the method's documented tolerance."""
    weights = {(spec.name, 2): _weights(spec, tmp_path)}
    inputs = _inputs(spec, 2 * TILE - 24, 2 * TILE - 40)
    whole = StageWorker(RuntimeConfig(device="cpu"), "cpu", {spec.name: spec}, weights)
    tiled = StageWorker(RuntimeConfig(device="cpu", tile_size=TILE), "cpu", {spec.name: spec}, weights)
    seen: list[tuple[int, int]] = []

    def record(module, args):
        if args[0].shape[-1] > 1:  # not the pooled inputs of channel attention
            seen.append(tuple(args[0].shape[-2:]))

    reference, _ = whole.compute(spec.name, 2, inputs)
    network = tiled.model(spec.name, 2).instance.network
    hooks = [m.register_forward_pre_hook(record) for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        output, _ = tiled.compute(spec.name, 2, inputs)
    finally:
        for hook in hooks:
            hook.remove()
    height, width = inputs[0].shape[-2:]
    assert seen and min(h for h, _ in seen) < height and min(w for _, w in seen) < width, "did not tile"
    assert tiled.model(spec.name, 2).instance.tile == TILE
    difference = (output - reference).abs().max().item()
    print(f"\n{spec.name}: tiled ({TILE} px) vs untiled max |difference| {difference:.2e} "
          f"(tolerance {spec.tile_tolerance:g})")
    assert difference <= spec.tile_tolerance
