"""Whole-set conversions applied after loading: channel count and image size (uint8 in, out).

Work is done in chunks of images so that the float or int32 intermediates stay small even for
STL-10's 100,000 unlabeled images.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from equissl.augment.stats import resize_float

CHUNK = 4096  # images per step
LUMA_WEIGHTS = (299, 587, 114)  # ITU-R BT.601, in thousandths


def _map_chunks(
    images: torch.Tensor, shape: tuple[int, ...], fn: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    out = torch.empty((images.shape[0], *shape), dtype=torch.uint8)
    for start in range(0, images.shape[0], CHUNK):
        out[start : start + CHUNK] = fn(images[start : start + CHUNK])
    return out


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    wr, wg, wb = LUMA_WEIGHTS
    acc = rgb[:, 0].to(torch.int32) * wr + rgb[:, 1].to(torch.int32) * wg
    acc += rgb[:, 2].to(torch.int32) * wb
    return ((acc + 500) // 1000).unsqueeze(1).to(torch.uint8)  # rounded, half up


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, C, H, W) uint8 with `channels` channels: grey replicated to RGB, or RGB to luminance
    round(0.299 R + 0.587 G + 0.114 B)."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return images.repeat(1, 3, 1, 1)
    if have == 3 and channels == 1:
        return _map_chunks(images, (1, *images.shape[2:]), _luma)
    raise ValueError(f"cannot convert {have} channels to {channels}")


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, size, size) uint8 by antialiased bilinear interpolation; unchanged if already so."""
    if tuple(images.shape[2:]) == (size, size):
        return images

    def step(chunk: torch.Tensor) -> torch.Tensor:
        return resize_float(chunk.float(), size).round_().clamp_(0, 255).to(torch.uint8)

    return _map_chunks(images, (images.shape[1], size, size), step)
