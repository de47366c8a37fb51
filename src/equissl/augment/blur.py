"""Gaussian blur with one random sigma per image, for a whole float batch at once.

Semantics follow torchvision's ``GaussianBlur`` (the blur of SimCLR-style pipelines): a
``kernel`` x ``kernel`` separable Gaussian, taps at integer offsets ``-(k-1)/2 .. (k-1)/2``
normalised to sum 1, reflect padding at the borders. Each image gets its own sigma; the batch is
filtered by `separable_filter` (also the transformations' blur levels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def blur_kernel_size(kernel: int | None, size: int) -> int:
    """The odd kernel used on ``size`` x ``size`` views: ``kernel``, or with None SimCLR's 10% of
    the view size made odd; at most ``2 * size - 1`` (reflect padding needs pad < size)."""
    k = kernel or int(0.1 * size)
    k = k + 1 if k % 2 == 0 else k
    return max(1, min(k, 2 * size - 1))


def gaussian_taps(sigma: Tensor, kernel: int) -> Tensor:
    """Normalised 1-D Gaussian taps ``(N, kernel)`` for per-image ``sigma`` ``(N,)``; a sigma of
    0 (an image drawn without blur) gives the identity tap, not a division by zero."""
    half = (kernel - 1) / 2
    offsets = torch.linspace(-half, half, kernel, device=sigma.device, dtype=sigma.dtype)
    taps = torch.exp(-0.5 * (offsets / sigma.clamp_min(1e-6)[:, None]) ** 2)
    return taps / taps.sum(dim=1, keepdim=True)


def reflect_index(size: int, pad: int, device: torch.device | str = "cpu") -> Tensor:
    """Indices of a side of `size` pixels reflect-padded by `pad` on both ends (the edge pixel
    not repeated, as numpy's and torch's "reflect"), for any `pad`, also wider than the side."""
    idx = torch.arange(-pad, size + pad, device=device)
    period = 2 * (size - 1)
    if period == 0:
        return torch.zeros_like(idx)
    r = idx.remainder(period)
    return torch.where(r >= size, period - r, r)


def separable_filter(x: Tensor, taps: Tensor) -> Tensor:
    """Filter float ``(N, C, H, W)`` image i along rows, then columns, by its own odd 1-D
    ``taps[i]`` ``(N, k)``, with reflect padding: two grouped convolutions, one group per image
    and channel."""
    n, c, height, width = x.shape
    if n * c == 0:
        return x.clone()
    k = taps.shape[1]
    pad = k // 2
    per_channel = taps.to(x.dtype).repeat_interleave(c, dim=0)  # (N*C, k)
    flat = x.reshape(1, n * c, height, width)
    rows = F.conv2d(
        flat.index_select(3, reflect_index(width, pad, x.device)),
        per_channel.view(-1, 1, 1, k),
        groups=n * c,
    )
    cols = F.conv2d(
        rows.index_select(2, reflect_index(height, pad, x.device)),
        per_channel.view(-1, 1, k, 1),
        groups=n * c,
    )
    return cols.view(n, c, height, width)


def gaussian_blur(x: Tensor, sigma: Tensor, kernel: int) -> Tensor:
    """Blur float ``(N, C, H, W)`` images, image i with ``sigma[i]``, by an odd ``kernel``."""
    if kernel % 2 == 0 or kernel < 1:
        raise ValueError(f"kernel must be odd and positive, got {kernel}")
    if kernel == 1:
        return x.clone()
    return separable_filter(x, gaussian_taps(sigma.to(x.dtype), kernel))
