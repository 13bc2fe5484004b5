"""A training run for the distributed tests (`tests/test_training_ddp.py`), launched as users launch
`cfanet-bench train`:

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_driver.py RUN_DIR REPORT_DIR ...
    python tests/ddp_driver.py RUN_DIR REPORT_DIR ...          (one process, the reference)

It makes the calls the train command makes (`distributed_context("cpu")`, the model on
`ctx.device`, `Trainer(..., distributed=ctx).fit(resume=...)`, files and prints on rank 0 only)
for a small CFANet (`CFANet.create(2, "small")`) on tiny synthetic scenes, and writes
`REPORT_DIR/rank_<r>.pt` per rank: its final parameters, its loss list and its `TrainingResult`
fields, so that the test can compare ranks and runs.

Test conveniences: `--stall-at-step S` makes every rank sleep for good when it reaches step S in
this invocation (after writing `REPORT_DIR/stalled_<r>` with its pid), standing for a long run that
the test then kills; one thread per process, so that results do not depend on how many processes
share the cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

from cfanet.data.scene import Scene  # noqa: E402
from cfanet.network import CFANet  # noqa: E402
from cfanet.training import JointTask, Trainer, TrainingConfig, distributed_context  # noqa: E402

SCALE = 2
TRAIN_SCENES, VAL_SCENES = 6, 3


def synthetic_scene(name: str, seed: int, size: tuple[int, int] = (24, 28)) -> Scene:
    """A scene of smooth random 8-bit images at x2: the exposures are a random colour field at a
    quarter of the LR size, bilinearly upsampled and brightened / darkened."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    low = torch.rand(1, 3, h // 4, w // 4, generator=g)
    hr = torch.nn.functional.interpolate(low, size=(SCALE * h, SCALE * w), mode="bilinear", align_corners=False)

    def quantise(x):
        return torch.round(x.clamp(0, 1) * 255) / 255

    gt_over, gt_under, gt = quantise(0.4 + 0.8 * hr), quantise(0.6 * hr), quantise(0.1 + 0.8 * hr)
    down = lambda x: quantise(torch.nn.functional.avg_pool2d(x, SCALE))  # noqa: E731
    return Scene(name, down(gt_over), down(gt_under), gt, gt_over, gt_under, SCALE)


def scenes() -> tuple[list[Scene], list[Scene]]:
    return ([synthetic_scene(f"t{i}", i) for i in range(TRAIN_SCENES)],
            [synthetic_scene(f"v{i}", 100 + i) for i in range(VAL_SCENES)])


def config(steps: int | None, minutes: float | None = None, batch_size: int = 4) -> TrainingConfig:
    """Batch 4 (global), LR patch 16, lr 2e-3 halved every 2 epochs of 3 steps, validation per epoch."""
    return TrainingConfig(batch_size=batch_size, patch_size=16, lr=2e-3, steps_per_epoch=3, decay_every=2,
                          epochs=None, max_steps=steps, max_minutes=minutes)


class StallingTask(JointTask):
    """JointTask whose loss sleeps for good at step `stall_at` of this invocation."""

    def __init__(self, model, stall_at: int | None, marker: Path):
        super().__init__(model)
        self.stall_at, self.marker, self.calls = stall_at, marker, 0

    def loss(self, batch):
        if self.stall_at is not None and self.calls == self.stall_at:
            self.marker.write_text(str(os.getpid()))
            while True:
                time.sleep(1)
        self.calls += 1
        return super().loss(batch)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("report_dir")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--minutes", type=float)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--stall-at-step", type=int)
    args = parser.parse_args(argv)

    report = Path(args.report_dir)
    report.mkdir(parents=True, exist_ok=True)
    train, val = scenes()
    with distributed_context("cpu") as ctx:
        model = CFANet.create(SCALE, "small", seed=0, device=ctx.device)
        task = StallingTask(model, args.stall_at_step, report / f"stalled_{ctx.rank}")
        trainer = Trainer(task, train, val, config(args.steps, args.minutes, args.batch_size), args.run_dir,
                          progress=False, title="CFANet small x2 (ddp test)", distributed=ctx)
        result = trainer.fit(resume=args.resume)
        torch.save({"params": {k: v.detach().clone() for k, v in task.module.state_dict().items()},
                    "losses": list(trainer.losses), "steps": result.steps, "steps_this_run": result.steps_this_run,
                    "stopped_by": result.stopped_by, "history": result.history, "best": result.best,
                    "world_size": result.world_size, "rank": ctx.rank,
                    "best_checkpoint": str(result.best_checkpoint)},
                   report / f"rank_{ctx.rank}.pt")
        if ctx.is_main:
            print(f"{result.steps} steps on {ctx.world_size} process(es), stopped by {result.stopped_by}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
