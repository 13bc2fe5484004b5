"""Stages are deterministic (issue 15, item 6): U2Fusion, whose min-max stretch of the fused luma
amplifies float noise, gives bit-identical outputs when called again in the same setting, and moves
by at most 2 8-bit levels between CPU thread counts, which is why the thread count is part of every
stage key (tests/test_runner.py): a cache never mixes outputs of different settings. Inputs come
from the stage cache, whose entries are checked on read, so a partially written input cannot
reach a stage either."""

from __future__ import annotations

import torch

from cfanet.data import open_dataset
from pipelines.registry import method

LEVEL = 1 / 255


def test_u2fusion_on_sr_outputs_is_deterministic_and_bounded_across_threads():
    dataset = open_dataset("demo", 2, num_scenes=2, hr_size=48, seed=0)
    sr, fusion = method("DBPN").create(2, "small", seed=0), method("U2Fusion").create(2, "small", seed=0)
    threads = torch.get_num_threads()
    worst_repeat, worst_threads = 0.0, 0.0
    try:
        for name in dataset.names():
            scene = dataset.load(name)
            outputs = {}
            for count in (1, 2):
                torch.set_num_threads(count)
                over, under = (torch.floor(sr.upscale(x) * 255 + 0.5) / 255 for x in (scene.over, scene.under))
                runs = [fusion.fuse(over, under) for _ in range(3)]
                worst_repeat = max(worst_repeat, max((r - runs[0]).abs().max().item() for r in runs))
                outputs[count] = runs[0]
            worst_threads = max(worst_threads, (outputs[1] - outputs[2]).abs().max().item())
    finally:
        torch.set_num_threads(threads)
    print(f"\nU2Fusion on DBPN outputs: repeats differ by {worst_repeat / LEVEL:.0f} levels, 1 vs 2 threads by "
          f"{worst_threads / LEVEL:.0f} levels")
    assert worst_repeat == 0.0
    assert worst_threads <= 2 * LEVEL + 1e-6
