"""uint8 -> float conversion, per-channel normalisation and dataset channel statistics."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# float32(1/255): every path (plain conversion, crops) scales by this same constant, so an
# identity crop equals ``to_float`` bit for bit and 255 maps exactly to 1.0.
UINT8_SCALE = float(torch.tensor(1 / 255, dtype=torch.float32))


def to_float(images: Tensor) -> Tensor:
    """uint8 images -> float32 in [0, 1] (value * float32(1/255))."""
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    return images.to(torch.float32).mul_(UINT8_SCALE)


def resize_float(x: Tensor, size: int | None) -> Tensor:
    """Float (N, C, H, W) batch resized to size x size (bilinear, antialiased); as is if equal."""
    if not size or tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def normalize(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """``(x - mean) / std`` per channel; ``mean``/``std`` are ``(C,)``, channels at dim -3."""
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
    return (x - mean) / std


def channel_stats(images: Tensor, batch: int = 8192) -> tuple[Tensor, Tensor]:
    """Per-channel mean and (population) std of uint8 ``(N, C, H, W)`` images, in [0, 1] units.

    Works through ``batch`` images at a time with per-channel 256-bin histograms, so the sums
    are exact integers whatever the dataset size; the moments are then taken in float64.
    Returns float32 ``(C,)`` tensors on the images' device.
    """
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise TypeError(
            f"expected uint8 (N, C, H, W) images, got {images.dtype} {tuple(images.shape)}"
        )
    channels = images.shape[1]
    counts = torch.zeros(channels, 256, dtype=torch.int64, device=images.device)
    for chunk in images.split(batch):
        for c in range(channels):
            counts[c] += torch.bincount(chunk[:, c].reshape(-1), minlength=256)
    counts = counts.cpu().to(torch.float64)
    levels = torch.arange(256, dtype=torch.float64) / 255
    total = counts.sum(dim=1)
    mean = (counts * levels).sum(dim=1) / total
    var = (counts * (levels - mean[:, None]) ** 2).sum(dim=1) / total
    return mean.float().to(images.device), var.sqrt().float().to(images.device)
