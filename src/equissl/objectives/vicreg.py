"""VICReg: invariance, variance and covariance regularisation of two views' embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from equissl.distributed import gather_with_grad


def _variance(z: torch.Tensor) -> torch.Tensor:
    """Hinge on the per-dimension std: mean_d relu(1 - sqrt(unbiased var_d + 1e-4))."""
    return F.relu(1.0 - torch.sqrt(z.var(dim=0) + 1e-4)).mean()


def _covariance(z: torch.Tensor) -> torch.Tensor:
    """Sum of squared off-diagonal entries of the (N-1)-normalised covariance, divided by D."""
    n, d = z.shape
    z = z - z.mean(dim=0)
    cov = z.T @ z / (n - 1)
    return (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / d


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(loss, detached parts 'invariance', 'variance', 'covariance') of two views (N, D).

    Bardes, Ponce & LeCun, 2022 (eq. 6 and the reference code): invariance is the MSE between
    the views; variance keeps each dimension's std above 1 (averaged over the two branches) to
    prevent collapse; covariance decorrelates dimensions (summed over the branches). Under DDP
    the embeddings are gathered with gradient first, so the loss equals the single-process
    loss on the global batch.
    """
    z1 = gather_with_grad(z1.float())
    z2 = gather_with_grad(z2.float())
    invariance = F.mse_loss(z1, z2)
    variance = 0.5 * (_variance(z1) + _variance(z2))
    covariance = _covariance(z1) + _covariance(z2)
    loss = sim_weight * invariance + var_weight * variance + cov_weight * covariance
    parts = {
        "invariance": invariance.detach(),
        "variance": variance.detach(),
        "covariance": covariance.detach(),
    }
    return loss, parts
