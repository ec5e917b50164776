"""Data-parallel training over ``torch.distributed`` (gloo on CPU, NCCL on GPUs).

Every process (rank) holds a full model replica, collects its own experience and samples its own
batches; after each backward pass the gradients are averaged across ranks with one flattened
``all_reduce`` per optimiser stage, so every rank applies the same update and the replicas stay
identical. This is what ``DistributedDataParallel`` does, done explicitly because world-model
objectives compute their losses outside ``forward`` and may run several backward passes per
update (TD-MPC2's model and policy stages).

Launch with ``torchrun`` (it sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``);
see docs/training.md.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["DistributedContext", "init_from_environment"]


@dataclass
class DistributedContext:
    """The process group as the Trainer sees it (a single process when ``world_size == 1``)."""

    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls) -> DistributedContext:
        """The initialised default process group, or a single process."""
        if dist.is_available() and dist.is_initialized():
            return cls(rank=dist.get_rank(), world_size=dist.get_world_size())
        return cls()

    def broadcast_module(self, module: nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank (replicas start identical)."""
        if not self.enabled:
            return
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def average_gradients(self, params: Sequence[Tensor]) -> None:
        """Replace every ``p.grad`` by its mean over ranks (one flattened all-reduce)."""
        if not self.enabled or not params:
            return
        grads = [p.grad for p in params if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(self.world_size)
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_true(self, flag: bool) -> bool:
        """True when ``flag`` holds on every rank: a decision every rank takes together, so
        all of them issue the same collectives (e.g. "can we sample a batch yet")."""
        if not self.enabled:
            return flag
        t = torch.tensor([1 if flag else 0], dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    def all_sum(self, values: Sequence[float]) -> list[float]:
        """``values`` summed element-wise over every rank (themselves when not distributed)."""
        if not self.enabled:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return [float(v) for v in t]

    def all_equal(self, value: float) -> bool:
        """True when ``value`` is the same on every rank (used to check replicas agree)."""
        if not self.enabled:
            return True
        t = torch.tensor([value, -value], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t[0]) == value and float(-t[1]) == value


def init_from_environment(timeout_s: float = 300.0) -> DistributedContext:
    """Initialise the default process group when launched by ``torchrun`` (``WORLD_SIZE > 1``).

    Uses NCCL when CUDA is available, gloo otherwise. A single process (no ``WORLD_SIZE``, or 1)
    gets a context without a process group.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistributedContext()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return DistributedContext(rank=dist.get_rank(), world_size=dist.get_world_size())
