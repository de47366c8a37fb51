"""Equivariance by prediction: cross-entropy on the label of the transformation applied."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def prediction_loss(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy, accuracy in [0, 1]) of transformation logits (M, K) against labels (M,)."""
    logits = logits.float()
    loss = F.cross_entropy(logits, labels)
    acc = (logits.argmax(1) == labels).float().mean()
    return loss, acc.detach()
