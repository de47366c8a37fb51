"""Chunks of a batch: consecutive blocks of images that share one random draw (CARE)."""

from __future__ import annotations

import torch
from torch import Tensor


def chunk_sizes(n: int, chunks: int) -> list[int]:
    """Sizes of n consecutive images split into min(chunks, n) near-equal blocks (the larger
    blocks first, as `torch.tensor_split`)."""
    c = max(1, min(chunks, n))
    q, r = divmod(n, c)
    return [q + 1] * r + [q] * (c - r)


def chunk_ids(n: int, chunks: int, device: torch.device | str | None = None) -> Tensor:
    """Chunk index (n,) of each of n consecutive images split as `chunk_sizes`."""
    sizes = chunk_sizes(n, chunks)
    index = torch.arange(len(sizes), device=device)
    return index.repeat_interleave(torch.tensor(sizes, device=device), output_size=n)
