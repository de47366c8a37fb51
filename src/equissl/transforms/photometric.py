"""Pointwise colour transformations: grayscale and inversion, selected per sample with
torch.where (exact identity at label 0, no host syncs)."""

from __future__ import annotations

import torch
from torch import Tensor

from equissl.errors import ConfigError
from equissl.transforms.base import Transformation

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 luminance weights


def _selected(labels: Tensor) -> Tensor:
    return (labels != 0).view(-1, 1, 1, 1)


def grayscale(channels: int) -> Transformation:
    """Label 1 replaces RGB by its luminance 0.299 R + 0.587 G + 0.114 B on all three
    channels. Images with one channel are already gray: both labels are the identity there.
    Not a group element set usable for relative prediction (graying loses colour): relative
    is None."""
    if channels not in (1, 3):
        raise ConfigError(f"grayscale needs 1 or 3 channels, got {channels}")

    def apply(images: Tensor, labels: Tensor) -> Tensor:
        if images.shape[1] == 1:
            return images.clone()
        r, g, b = images.unbind(1)
        luma = (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1).expand_as(images)
        return torch.where(_selected(labels), luma, images)

    return Transformation("grayscale", 2, apply, None)


def invert(channels: int) -> Transformation:
    """Z2: label 1 maps x to 1 - x (an involution: exact on dyadic values such as k / 256,
    up to float rounding otherwise)."""

    def apply(images: Tensor, labels: Tensor) -> Tensor:
        return torch.where(_selected(labels), 1 - images, images)

    return Transformation("invert", 2, apply, torch.tensor([[0, 1], [1, 0]]))
