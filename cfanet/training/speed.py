"""Training throughput: optimiser steps per second on synthetic batches of a given patch size."""

from __future__ import annotations

import time

import torch

from cfanet.training.config import TrainingConfig
from cfanet.training.patches import ROLES_BY_KIND, LR_ROLES, PatchBatch
from cfanet.training.tasks import TrainingTask
from cfanet.training.trainer import module_device, precision_plan, reproducibility, train_step


def synthetic_batch(kind: str, batch_size: int, patch_size: int, scale: int, seed: int = 0) -> PatchBatch:
    """A random PatchBatch in [0, 1] with the images a task kind needs (CPU, float32)."""
    generator = torch.Generator().manual_seed(seed)
    images = {}
    for role in ROLES_BY_KIND[kind]:
        side = patch_size if role in LR_ROLES else scale * patch_size
        images[role] = torch.rand(batch_size, 3, side, side, generator=generator)
    return PatchBatch(**images)


def measure_training_speed(task: TrainingTask, config: TrainingConfig, steps: int = 20, warmup: int = 3) -> dict:
    """Optimiser steps per second of `task` at `config`'s batch and patch size, on the module's
    device with the precision plan the trainer would use (`config.precision`, channels-last on
    CUDA; fp16 with its gradient scaler), timed over
    `steps` steps after `warmup` untimed ones. Changes the module's weights (Adam steps on noise):
    measure on a throwaway model."""
    device = module_device(task.module)
    plan = precision_plan(config, device)
    module = task.module.train().to(memory_format=plan.memory_format)
    optimizer = torch.optim.Adam(module.parameters(), lr=config.lr, betas=tuple(config.betas))
    scaler = plan.grad_scaler()
    batch = synthetic_batch(task.kind, config.batch_size, config.patch_size, task.scale).to(device, plan.memory_format)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with reproducibility(device, deterministic=False):
        for _ in range(warmup):
            train_step(task, optimizer, batch, plan, scaler)
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            train_step(task, optimizer, batch, plan, scaler)
        sync()
        seconds = time.perf_counter() - start
    result = {"steps_per_second": steps / seconds, "seconds": seconds, "steps": steps,
              "batch_size": config.batch_size, "patch_size": config.patch_size, "scale": task.scale,
              "precision": plan.describe(), "device": str(device)}
    if device.type == "cuda":
        result["device_name"] = torch.cuda.get_device_name(device)
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    return result
