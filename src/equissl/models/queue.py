"""MoCo's queue of negative keys: a ring buffer that keeps the keys of the last batches."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from equissl.distributed import gather_with_grad


class KeyQueue(nn.Module):
    """`size` keys of dimension `dim`, stored as rows and saved in checkpoints (buffers). It
    starts as random unit vectors, as MoCo's; each `push` writes a batch of keys (gathered from
    every process, in rank order) over the oldest ones, starting at the pointer, and moves the
    pointer on (modulo the size). The pointer stays on the device: no host sync."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def push(self, keys: Tensor) -> None:
        """Enqueue the (N, dim) keys of this step; as many of the oldest are dequeued."""
        keys = gather_with_grad(keys.detach().to(self.keys.dtype))
        size = self.keys.shape[0]
        rows = (self.ptr + torch.arange(keys.shape[0], device=keys.device)) % size
        self.keys.index_copy_(0, rows, keys)
        self.ptr.copy_((self.ptr + keys.shape[0]) % size)
