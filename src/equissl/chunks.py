"""Chunks of a batch: consecutive blocks of images that share one random draw (CARE)."""

from __future__ import annotations

import torch
from torch import Tensor


def chunk_count(n: int, chunks: int) -> int:
    """How many blocks n images make when asked for `chunks`: never more than n, at least 1."""
    return max(1, min(chunks, n))


def chunk_sizes(n: int, chunks: int) -> list[int]:
    """Sizes of n consecutive images split into `chunk_count` near-equal blocks (the larger
    blocks first, as `torch.tensor_split`)."""
    c = chunk_count(n, chunks)
    q, r = divmod(n, c)
    return [q + 1] * r + [q] * (c - r)


def chunk_ids(n: int, chunks: int, device: torch.device | str | None = None) -> Tensor:
    """Chunk index (n,) of each of n consecutive images split as `chunk_sizes`; computed on
    `device` from an arange (no host-to-device copy, so no sync on an accelerator)."""
    q, r = divmod(n, chunk_count(n, chunks))
    i = torch.arange(n, device=device)
    big = r * (q + 1)  # the first r chunks hold q + 1 images
    return torch.where(i < big, i // (q + 1), r + (i - big) // q)
