"""Four-fold rotation (the cyclic group C4 acting on the pixel grid by 90-degree turns)."""

from __future__ import annotations

import torch

NUM_LABELS = 4


def rotate(images: torch.Tensor, k: torch.Tensor | int) -> torch.Tensor:
    """Rotate (N, C, H, W) square images by k x 90 degrees counter-clockwise (torch.rot90 convention)."""
    return torch.rot90(images, int(k) % 4, dims=(2, 3))


def expand_rotations(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All four rotations of a batch: (4N, C, H, W) in blocks k = 0, 1, 2, 3, and labels (4N,)."""
    n = images.shape[0]
    rotated = torch.cat([torch.rot90(images, k, dims=(2, 3)) for k in range(NUM_LABELS)])
    labels = torch.arange(NUM_LABELS, device=images.device).repeat_interleave(n)
    return rotated, labels
