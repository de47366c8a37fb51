"""Negative cosine similarity with stop-gradient: the SimSiam and BYOL invariance losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """D(p, z) = mean_i -cos(p_i, z_i) over (N, D) rows, with `z` detached (stop-gradient).

    SimSiam (Chen & He, 2021, eq. 1): the stop-gradient on the target branch is what prevents
    collapse without negatives. Computed in float32.
    """
    return -F.cosine_similarity(p.float(), z.detach().float(), dim=-1).mean()


def simsiam_loss(
    p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor
) -> torch.Tensor:
    """SimSiam's symmetrised loss 0.5 * (D(p1, z2) + D(p2, z1)) (Chen & He, 2021, eq. 2)."""
    return 0.5 * (negative_cosine(p1, z2) + negative_cosine(p2, z1))


def byol_loss(
    p1: torch.Tensor, p2: torch.Tensor, t1: torch.Tensor, t2: torch.Tensor
) -> torch.Tensor:
    """BYOL's symmetrised loss mean_i [(2 - 2 cos(p1_i, t2_i)) + (2 - 2 cos(p2_i, t1_i))].

    Online predictions `p1, p2` against the target-network projections `t1, t2` of the other
    view, targets detached (Grill et al., 2020, eq. 2 and the symmetrised L + L~). It is the
    normalised squared distance ||p/|p| - t/|t|||^2 = 2 - 2 cos, i.e. SimSiam's D up to affine
    constants.
    """
    return 4.0 + 2.0 * (negative_cosine(p1, t2) + negative_cosine(p2, t1))
