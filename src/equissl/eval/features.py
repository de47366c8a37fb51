"""Frozen-encoder feature extraction: uint8 images in, one float32 vector per image out."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from equissl.augment.stats import resize_float, to_float
from equissl.errors import UserError


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """Put every submodule in eval mode, then restore each one's own previous mode."""
    modes = [m.training for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, mode in zip(module.modules(), modes, strict=True):
            m.training = mode


def _check_inputs(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise UserError(
            f"images must be a uint8 (N,C,H,W) tensor, got {images.dtype} {tuple(images.shape)}"
        )
    channels = images.shape[1]
    if mean.shape != (channels,) or std.shape != (channels,):
        raise UserError(
            f"mean and std must have shape ({channels},), got {tuple(mean.shape)} and {tuple(std.shape)}"
        )
    if images.shape[0] == 0:
        raise UserError("no images to extract features from")


@torch.no_grad()
def extract_features(
    encoder: nn.Module,
    images: torch.Tensor,
    *,
    mean: torch.Tensor,
    std: torch.Tensor,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    size: int = 0,
    transform: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Encode uint8 (N,C,H,W) images with `encoder` in eval mode; return float32 (N, D) on CPU.

    Each batch goes to `device`, is scaled to [0,1], resized to size x size when `size` > 0
    (bilinear, antialiased), transformed by `transform(x, labels)` when given (a
    Transformation's `apply`, one label per image, as in training) and normalised with
    per-channel `mean`/`std` given in [0,1] units.
    On CUDA the encoder runs under bfloat16 autocast. The encoder's train/eval modes (of every
    submodule) are restored afterwards.
    """
    _check_inputs(images, mean, std)
    if batch_size < 1:
        raise UserError(f"batch_size must be at least 1, got {batch_size}")
    device = torch.device(device)
    mean = mean.to(device, torch.float32).view(1, -1, 1, 1)
    std = std.to(device, torch.float32).view(1, -1, 1, 1)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )
    out = []
    with eval_mode(encoder), autocast:
        for start in range(0, images.shape[0], batch_size):
            x = resize_float(to_float(images[start : start + batch_size].to(device)), size)
            if transform is not None:
                x = transform(x, labels[start : start + batch_size].to(device))
            feats = encoder((x - mean) / std)
            out.append(feats.flatten(1).float().cpu())
    return torch.cat(out)
