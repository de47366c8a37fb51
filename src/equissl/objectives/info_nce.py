"""E-SSL's InfoNCE: each anchor against the other view's N embeddings, symmetrised.

The official E-SSL code (rdangovs/essl, cifar10/main.py and imagenet/simclr/main.py,
`info_nce_loss` / `infoNCE`) computes `info_nce(z1, z2) / 2 + info_nce(z2, z1) / 2` with logits
z1 z2^T / t and the diagonal as labels: no negatives from the anchor's own view, unlike the
SimCLR paper's NT-Xent (`nt_xent`, 2N-2 negatives).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from equissl.distributed import gather_with_grad, world


def _one_way(anchors: torch.Tensor, others: torch.Tensor, temperature: float) -> torch.Tensor:
    rank, _ = world()
    n = anchors.shape[0]
    logits = anchors @ gather_with_grad(others).T / temperature  # (N, W N)
    positive = torch.arange(n, device=anchors.device) + rank * n
    return F.cross_entropy(logits, positive)


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Symmetrised cross-view InfoNCE of two views (N, D) each, L2-normalised here. Under DDP
    the other view's embeddings are gathered from all processes with gradient, so the loss
    equals the single-process loss on the global batch (as the official ImageNet code)."""
    z1 = F.normalize(z1.float(), dim=1)
    z2 = F.normalize(z2.float(), dim=1)
    return _one_way(z1, z2, temperature) / 2 + _one_way(z2, z1, temperature) / 2
