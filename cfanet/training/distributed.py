"""Training on several processes (GPUs, hosts) with PyTorch's DistributedDataParallel and torchrun.

One machine with N GPUs::

    torchrun --nproc_per_node=N $(which cfanet-bench) train CFANet ...

K machines (run on each, R = 0 .. K-1)::

    torchrun --nnodes=K --node_rank=R --nproc_per_node=N \\
        --rdzv_backend=c10d --rdzv_endpoint=HOST:PORT $(which cfanet-bench) train CFANet ...

torchrun starts one process per GPU and sets `WORLD_SIZE`, `RANK`, `LOCAL_RANK`, `MASTER_ADDR`
and `MASTER_PORT`; `distributed_context(device)` reads them, joins the default process group
(`env://`; NCCL for CUDA, gloo otherwise) and gives each process its GPU (`cuda:LOCAL_RANK`).
Without torchrun (or with one process) it initialises nothing and the run is a plain
single-process run. The caller::

    ctx = distributed_context(device)
    with ctx:                                   # destroys the process group on exit
        model = create(..., device=ctx.device)
        result = Trainer(task, train, val, config, output, distributed=ctx).fit(resume=...)
        if ctx.is_main:
            print(...)

What the trainer does with it (see `cfanet.training.trainer`): the network is wrapped in
`torch.nn.parallel.DistributedDataParallel`; `config.batch_size` is the global batch, each rank
computing rows [rank * B / W, (rank + 1) * B / W) of the batch a single process would draw at that
step; DDP averages the gradients, so W processes follow the single-process trajectory up to float
summation order. Rank 0 alone writes the output folder; it must be reachable by rank 0 (on a
cluster: shared storage, since the c10d rendezvous may give rank 0 to any node).

The helpers below (`broadcast_object`, `all_gather_objects`, `broadcast_flag`, `mean_over_ranks`,
`barrier`) are the identity on a single-process context, so the trainer calls them
unconditionally.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from cfanet.training.config import TrainingError

log = logging.getLogger(__name__)

TORCHRUN_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a (possibly single-process) run.

    `world_size` processes in all, this one is `rank` (0 .. world_size - 1) and `local_rank` on its
    machine, computing on `device`; `backend` is the process group's ("nccl", "gloo"), None for a
    single process. As a context manager it destroys the process group on exit (`shutdown`).
    """

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size or self.local_rank < 0:
            raise TrainingError(f"invalid process placement: rank {self.rank}, local rank {self.local_rank}, "
                                f"world size {self.world_size}")
        if not isinstance(self.device, torch.device):
            object.__setattr__(self, "device", torch.device(self.device))

    @property
    def is_main(self) -> bool:
        """True on rank 0: the process that writes the output folder and prints."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def rows(self, batch_size: int) -> range:
        """This rank's rows of a global batch of `batch_size` (TrainingError unless divisible)."""
        if batch_size % self.world_size:
            raise TrainingError(f"the batch size {batch_size} is the global batch of all {self.world_size} "
                                f"processes and must be divisible by the world size {self.world_size}; "
                                f"choose a multiple of {self.world_size}")
        share = batch_size // self.world_size
        return range(self.rank * share, (self.rank + 1) * share)

    def describe(self) -> str:
        if not self.is_distributed:
            return f"1 process on {self.device}"
        return f"{self.world_size} processes ({self.backend}), rank {self.rank} on {self.device}"

    def __enter__(self) -> "DistributedContext":
        return self

    def __exit__(self, *exc_info) -> None:
        if self.is_distributed:
            shutdown()


def single_process(device: str | torch.device = "cpu") -> DistributedContext:
    """The context of a run of one process on `device`."""
    return DistributedContext(device=torch.device(device))


def distributed_context(device: str | torch.device = "cpu") -> DistributedContext:
    """This process's context. Under torchrun with WORLD_SIZE > 1: joins the default process group
    (once; `env://`, NCCL for a CUDA `device`, gloo otherwise) and, for CUDA, uses and selects
    `cuda:LOCAL_RANK` whatever index `device` names. Otherwise a single-process context on
    `device`, initialising nothing. TrainingError when a CUDA run has more local processes than
    visible GPUs."""
    requested = torch.device(device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return single_process(requested)
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise TrainingError(f"WORLD_SIZE is {world_size} but {', '.join(missing)} is not set: launch with torchrun")
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if requested.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise TrainingError(f"local rank {local_rank} needs a GPU, but {torch.cuda.device_count()} are visible: "
                                f"start at most that many processes per machine (--nproc_per_node)")
        if requested.index is not None and requested.index != local_rank:
            log.warning("device %s ignored: under torchrun each process uses cuda:LOCAL_RANK (cuda:%d)",
                        requested, local_rank)
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = requested, "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://")
    else:
        backend = dist.get_backend()
    if dist.get_world_size() != world_size or dist.get_rank() != rank:
        raise TrainingError(f"the process group has rank {dist.get_rank()} of {dist.get_world_size()}, "
                            f"the environment says {rank} of {world_size}")
    return DistributedContext(world_size, rank, local_rank, device, backend)


def shutdown() -> None:
    """Destroy the default process group, if one was initialised (idempotent)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# -- collectives (the identity for a single process) ------------------------------------------------

def _collective_device(ctx: DistributedContext) -> torch.device:
    # NCCL moves only CUDA tensors; gloo only CPU ones.
    return ctx.device if ctx.backend == "nccl" else torch.device("cpu")


def broadcast_object(ctx: DistributedContext, obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank (picklable objects; tensors arrive on the CPU as sent)."""
    if not ctx.is_distributed:
        return obj
    holder = [obj if ctx.rank == src else None]
    dist.broadcast_object_list(holder, src=src, device=_collective_device(ctx))
    return holder[0]


def all_gather_objects(ctx: DistributedContext, obj: Any) -> list:
    """Every rank's `obj`, in rank order, on every rank."""
    if not ctx.is_distributed:
        return [obj]
    gathered: list = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_flag(ctx: DistributedContext, flag: bool, src: int = 0) -> bool:
    """Rank `src`'s decision, on every rank (so that all ranks stop at the same step)."""
    if not ctx.is_distributed:
        return bool(flag)
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=_collective_device(ctx))
    dist.broadcast(value, src=src)
    return bool(value.item())


def mean_over_ranks(ctx: DistributedContext, value: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over the ranks (a new tensor; `value` itself on a single process)."""
    if not ctx.is_distributed:
        return value
    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / ctx.world_size


def barrier(ctx: DistributedContext) -> None:
    """Wait until every rank gets here (after rank 0's writes, so that files exist when any returns)."""
    if not ctx.is_distributed:
        return
    if ctx.backend == "nccl":
        dist.barrier(device_ids=[ctx.device.index])
    else:
        dist.barrier()


def wrap_module(module: torch.nn.Module, ctx: DistributedContext) -> torch.nn.Module:
    """`module` inside DistributedDataParallel on a distributed context (its parameters and
    buffers broadcast from rank 0 now; gradients averaged over the ranks in every backward), the
    module itself otherwise. Every parameter must receive a gradient at every step (true of every
    trainable network of the project); DDP names any that does not."""
    if not ctx.is_distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, output_device=device_ids[0] if device_ids else None)
