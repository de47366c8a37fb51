"""Heads on top of the backbone: the SimCLR projector and the transformation predictor."""

from __future__ import annotations

from torch import nn


def projector(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """E-SSL's CIFAR projector: Linear-BN-ReLU-Linear-BN(no affine), no biases before BN."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden, bias=False),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, out_dim, bias=False),
        nn.BatchNorm1d(out_dim, affine=False),
    )


def transformation_head(in_dim: int, hidden: int, num_labels: int) -> nn.Sequential:
    """E-SSL's predictor: in-hidden-hidden-labels with LayerNorm and ReLU (512-2048-2048-4 at full width)."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden),
        nn.LayerNorm(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden),
        nn.LayerNorm(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, num_labels),
    )
