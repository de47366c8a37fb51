"""Barlow Twins: drive the cross-correlation of the two views' embeddings to the identity."""

from __future__ import annotations

import torch

from equissl.distributed import gather_with_grad


def _batch_standardise(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-dimension (z - mean) / sqrt(biased var + eps) over the batch, as BatchNorm1d(affine=False)."""
    mean = z.mean(dim=0)
    var = z.var(dim=0, unbiased=False)
    return (z - mean) / torch.sqrt(var + eps)


def barlow_twins_loss(
    z1: torch.Tensor, z2: torch.Tensor, lambd: float = 0.0051, scale: float = 1.0
) -> torch.Tensor:
    """scale * (sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2) for C = z1n^T z2n / N.

    `z1, z2` (N, D) are standardised per dimension over the batch (Zbontar et al., 2021, eq. 1
    and Algorithm 1): the on-diagonal term makes the views invariant, the off-diagonal one
    decorrelates the dimensions (redundancy reduction). Under DDP both are gathered with
    gradient first, so the loss equals the single-process loss on the global batch.
    """
    z1 = _batch_standardise(gather_with_grad(z1.float()))
    z2 = _batch_standardise(gather_with_grad(z2.float()))
    c = z1.T @ z2 / z1.shape[0]
    diagonal = torch.diagonal(c)
    on_diag = (1.0 - diagonal).pow(2).sum()
    off_diag = c.pow(2).sum() - diagonal.pow(2).sum()
    return scale * (on_diag + lambd * off_diag)
