"""Gathering across processes with gradient, so batch-global losses see every process's samples."""

from __future__ import annotations

import torch
import torch.distributed as dist

# Imported before any process group exists: this module binds `group.WORLD` as default
# arguments, so imported later (DDP's constructor does, through torch._dynamo) it would keep the
# group, and its gloo worker threads, alive past destroy_process_group; a worker still freeing
# an all-reduce at interpreter exit then aborts the process (tests/test_distributed.py).
import torch.distributed.nn  # noqa: F401


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every process's gradient for the local slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        rank, size = dist.get_rank(), dist.get_world_size()
        n = grad.shape[0] // size
        return grad[rank * n : (rank + 1) * n]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` from all processes along dim 0 (rank order); identity on one process."""
    if world()[1] == 1:
        return x
    return _GatherWithGrad.apply(x)
