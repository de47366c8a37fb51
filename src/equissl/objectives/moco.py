"""MoCo's contrastive loss (He et al., 2020; MoCo-v2, Chen et al., 2020): each query against its
own key (the positive) and a queue of keys from earlier batches (the negatives)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def moco_logits(q: Tensor, k: Tensor, queue: Tensor, temperature: float) -> Tensor:
    """(N, 1 + K) logits [q . k, q . queue] / t of queries q and keys k, both (N, D), and a
    queue (K, D); q and k are L2-normalised here, the queue is stored normalised. Column 0 holds
    each query's positive."""
    q = F.normalize(q.float(), dim=1)
    k = F.normalize(k.float(), dim=1)
    positive = (q * k).sum(1, keepdim=True)
    negative = q @ queue.float().T
    return torch.cat([positive, negative], 1) / temperature


def moco_loss(q: Tensor, k: Tensor, queue: Tensor, temperature: float) -> Tensor:
    """Mean cross-entropy of `moco_logits` with label 0 (the positive key); no gradient reaches
    the keys or the queue (the key encoder is a momentum copy)."""
    logits = moco_logits(q, k.detach(), queue.detach(), temperature)
    labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, labels)
