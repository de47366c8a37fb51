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
    """Chunk index (n,) of each of n consecutive images split as `chunk_sizes`; computed on
    `device` from an arange (no host-to-device copy, so no sync on an accelerator)."""
    c = max(1, min(chunks, n))
    q, r = divmod(n, c)
    i = torch.arange(n, device=device)
    big = r * (q + 1)  # the first r chunks hold q + 1 images
    return torch.where(i < big, i // (q + 1), r + (i - big) // q)
