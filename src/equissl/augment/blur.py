"""Gaussian blur with one random sigma per image, for a whole float batch at once.

Semantics follow torchvision's ``GaussianBlur`` (the blur of SimCLR-style pipelines): a
``kernel`` x ``kernel`` separable Gaussian, taps at integer offsets ``-(k-1)/2 .. (k-1)/2``
normalised to sum 1, reflect padding at the borders. Each image gets its own sigma; the batch is
filtered by two grouped convolutions (rows, then columns), one group per image and channel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def blur_kernel_size(kernel: int, size: int) -> int:
    """The odd kernel used on ``size`` x ``size`` views: ``kernel``, or with 0 SimCLR's 10% of
    the view size made odd; at most ``2 * size - 1`` (reflect padding needs pad < size)."""
    k = kernel if kernel > 0 else int(0.1 * size)
    k = k + 1 if k % 2 == 0 else k
    return max(1, min(k, 2 * size - 1))


def gaussian_taps(sigma: Tensor, kernel: int) -> Tensor:
    """Normalised 1-D Gaussian taps ``(N, kernel)`` for per-image ``sigma`` ``(N,)``; a sigma of
    0 (an image drawn without blur) gives the identity tap, not a division by zero."""
    half = (kernel - 1) / 2
    offsets = torch.linspace(-half, half, kernel, device=sigma.device, dtype=sigma.dtype)
    taps = torch.exp(-0.5 * (offsets / sigma.clamp_min(1e-6)[:, None]) ** 2)
    return taps / taps.sum(dim=1, keepdim=True)


def gaussian_blur(x: Tensor, sigma: Tensor, kernel: int) -> Tensor:
    """Blur float ``(N, C, H, W)`` images, image i with ``sigma[i]``, by an odd ``kernel``."""
    if kernel % 2 == 0 or kernel < 1:
        raise ValueError(f"kernel must be odd and positive, got {kernel}")
    if kernel == 1:
        return x.clone()
    n, c, height, width = x.shape
    pad = kernel // 2
    taps = gaussian_taps(sigma.to(x.dtype), kernel).repeat_interleave(c, dim=0)  # (N*C, k)
    flat = x.reshape(1, n * c, height, width)
    rows = F.conv2d(
        F.pad(flat, (pad, pad, 0, 0), mode="reflect"), taps.view(-1, 1, 1, kernel), groups=n * c
    )
    cols = F.conv2d(
        F.pad(rows, (0, 0, pad, pad), mode="reflect"), taps.view(-1, 1, kernel, 1), groups=n * c
    )
    return cols.view(n, c, height, width)
