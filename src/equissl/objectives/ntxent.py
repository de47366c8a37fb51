"""NT-Xent (SimCLR's normalised temperature-scaled cross-entropy) over 2N-2 negatives."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from equissl.distributed import gather_with_grad, world


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Mean NT-Xent over the 2N anchors of two views (N, D) each.

    Each anchor's positive is the other view of its image; its negatives are the other 2N-2
    embeddings. Under DDP the candidates are gathered from all processes with gradient, so the
    loss equals the single-process loss on the concatenated global batch.
    """
    z1 = F.normalize(z1.float(), dim=1)
    z2 = F.normalize(z2.float(), dim=1)
    rank, size = world()
    n = z1.shape[0]
    candidates = torch.cat([gather_with_grad(z1), gather_with_grad(z2)])  # (2 W N, D)
    anchors = torch.cat([z1, z2])  # (2N, D)
    logits = anchors @ candidates.T / temperature
    local = torch.arange(n, device=z1.device) + rank * n
    self_index = torch.cat([local, local + size * n])
    positive = torch.cat([local + size * n, local])
    rows = torch.arange(2 * n, device=z1.device)
    # new_full fills on the device: no host tensor to copy (a sync on an accelerator)
    logits = logits.index_put((rows, self_index), logits.new_full((), float("-inf")))
    return F.cross_entropy(logits, positive)
