"""CARE (Gupta et al., ICLR 2024): make each transformation act as an orthogonal map of the
embedding by matching Gram matrices, plus the uniformity term that keeps it from collapsing.

Within a chunk every image gets the same pair of transformations (t1, t2). If t acts on the
unit-sphere embedding as an orthogonal map, the inner products between images of one chunk do
not depend on which t was applied: Gram(f(t1 x)) = Gram(f(t2 x)). The loss is the mean squared
difference of the off-diagonal entries, averaged over chunks.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from equissl.chunks import chunk_ids, chunk_sizes


def full_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast off on `device` (where autocast exists) for the block."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def care_loss(z1: Tensor, z2: Tensor, chunks: int) -> Tensor:
    """Mean over chunks of the mean squared difference between the off-diagonal Gram entries of
    the L2-normalised embeddings z1 = f(t1 x) and z2 = f(t2 x), both (N, D), images in order
    (chunk c holds the images with `chunk_ids(N, chunks) == c`).

    Zero when z2 = z1 Q for an orthogonal Q; unchanged when both views are rotated by the same
    orthogonal map. One masked N x N product per view: no Python loop over chunks and no
    host-device sync. Computed in float32 even under autocast.
    """
    n = z1.shape[0]
    # The loss subtracts two nearly equal Gram matrices: never in bf16 under autocast.
    with full_precision(z1.device):
        z1 = F.normalize(z1.float(), dim=1)
        z2 = F.normalize(z2.float(), dim=1)
        ids = chunk_ids(n, chunks, z1.device)
        pairs = (ids[:, None] == ids[None, :]) & ~torch.eye(n, dtype=torch.bool, device=z1.device)
        # A row of a chunk of m images holds m - 1 pairs, the chunk m (m - 1): each pair weighs
        # 1 / (m (m - 1)), then the chunks that have pairs are averaged.
        partners = pairs.sum(1, keepdim=True)  # m - 1
        weights = pairs / (partners * (partners + 1)).clamp(min=1)
        with_pairs = max(sum(m > 1 for m in chunk_sizes(n, chunks)), 1)
        diff = z1 @ z1.T - z2 @ z2.T
        return (diff.square() * weights).sum() / with_pairs


def uniformity_loss(z: Tensor, t: float = 2.0) -> Tensor:
    """Wang & Isola's uniformity of L2-normalised embeddings (N, D):
    log mean over pairs i != j of exp(-t ||z_i - z_j||^2). Lower is more uniform; it is the
    non-collapse term of CARE's "equivariance only" variant."""
    with full_precision(z.device):
        z = F.normalize(z.float(), dim=1)
        n = z.shape[0]
        sq = (2 - 2 * z @ z.T).clamp(min=0)
        eye = torch.eye(n, dtype=torch.bool, device=z.device)
        # masked_fill, not boolean indexing: no nonzero(), so no device sync
        return torch.logsumexp((-t * sq).masked_fill(eye, -math.inf).flatten(), 0) - math.log(
            n * (n - 1)
        )


def infonce_uniformity(z1: Tensor, z2: Tensor, temperature: float = 0.5) -> Tensor:
    """CARE's `uniformity` loss subtype (Sharut/CARE, cifar10_cifar100_stl10/utils.py
    `infoNCE`, its third output): over the 2N anchors of two views (N, D) each, the mean of
    log sum_k exp(z_i . z_k / t), k over the 2N-2 negatives of anchor i (both views, the anchor
    itself and its other view excluded). Embeddings are L2-normalised here."""
    with full_precision(z1.device):
        z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
        n2 = z.shape[0]
        idx = torch.arange(n2, device=z.device)
        excluded = (idx[:, None] == idx[None, :]) | ((idx[:, None] - idx[None, :]).abs() == n2 // 2)
        logits = (z @ z.T / temperature).masked_fill(excluded, -math.inf)
        return torch.logsumexp(logits, dim=1).mean()


def paired_uniformity(z1: Tensor, z2: Tensor, t: float = 2.0) -> Tensor:
    """Wang & Isola's uniformity within each of two copies (N, D), averaged: the copies of an
    image are never pushed apart."""
    return (uniformity_loss(z1, t) + uniformity_loss(z2, t)) / 2
