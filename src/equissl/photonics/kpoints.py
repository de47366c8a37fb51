"""Bloch vectors of the square lattice (a = 1): a Brillouin-zone grid for the DOS, a band path.

Bloch vectors are given in units of 2 pi / a: kappa = k a / (2 pi), the first Brillouin zone
being [-1/2, 1/2]^2.
"""

from __future__ import annotations

import torch

GAMMA = (0.0, 0.0)
X_POINT = (0.5, 0.0)
M_POINT = (0.5, 0.5)


def k_grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A uniform n x n grid over the full Brillouin zone, reduced by time reversal.

    The points kappa_i = (i + 1/2)/n - 1/2 per axis (Gamma-centred for odd n, offset from Gamma
    for even n) form a set mapped onto itself by every operation of the square lattice's point
    group (90-degree rotations, mirrors), so a DOS on it is exactly invariant when a cell is
    rotated or mirrored. No cell symmetry is assumed beyond time reversal, omega(k) = omega(-k),
    which holds for every real permittivity: of each pair {k, -k} one point is kept with weight
    2 (Gamma, its own partner, weight 1).

    Returns kpoints (K, 2) and weights (K,) summing to 1, float64; K = ceil(n^2 / 2).
    """
    axis = (torch.arange(n, dtype=torch.float64) + 0.5) / n - 0.5
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(-1, 2)
    key = torch.arange(n * n)
    partner = n * n - 1 - key  # index of -k: (i, j) -> (n-1-i, n-1-j)
    keep = key <= partner
    weights = torch.where(key[keep] < partner[keep], 2.0, 1.0).to(torch.float64) / (n * n)
    return grid[keep], weights


def k_path(points_per_segment: int = 16) -> torch.Tensor:
    """The band-diagram path Gamma-X-M-Gamma, (3 * points_per_segment + 1, 2), float64.

    Vertices are at indices 0, s, 2s, 3s (s = points_per_segment). It covers the irreducible
    zone's edges for cells with the full square symmetry (p4m), such as a centred rod.
    """
    s = points_per_segment
    corners = torch.tensor([GAMMA, X_POINT, M_POINT, GAMMA], dtype=torch.float64)
    t = torch.arange(s, dtype=torch.float64)[:, None] / s
    segments = [corners[i] + t * (corners[i + 1] - corners[i]) for i in range(3)]
    return torch.cat([*segments, corners[-1:]], dim=0)
