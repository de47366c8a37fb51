"""Frozen-encoder feature extraction: images in, one float32 vector per image out (the one
`extract_features`, also `equissl.extract_features` and `equissl.encoder.extract_features`)."""

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
    batch_size: int = 256,
    *,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
    size: int = 0,
    transform: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    labels: torch.Tensor | None = None,
    orientations: bool = False,
) -> torch.Tensor:
    """Features of (N, C, H, W) images, `batch_size` at a time, with every submodule of `encoder`
    in eval mode (each one's mode restored afterwards) and without gradients: float32 (N, D) on
    the CPU, or (N, D, |G|) with `orientations=True` (`encoder.orientation_features`).

    A bare backbone is given its normalisation, `mean` and `std` per channel in [0, 1] units:
    the images must be uint8; each batch goes to `device`, is scaled to [0, 1], resized to
    size x size when `size` > 0 (bilinear, antialiased), transformed by `transform(x, labels)`
    when given (a Transformation's `apply`, one label per image, as in training) and
    normalised; on CUDA the backbone runs under bfloat16 autocast.

    An encoder that normalises its own input (an `equissl.Encoder`, with `prepare`) is given
    no mean or std: the images (float in [0, 1] or uint8, on any device) go to it as they are,
    on its own device, in float32; no images give an empty (0, features) tensor.
    """
    if batch_size < 1:
        raise UserError(f"batch_size must be at least 1, got {batch_size}")
    if mean is None and std is None:
        return _self_normalised(encoder, images, batch_size, orientations)
    if mean is None or std is None:
        raise UserError("give both mean and std, or neither (an Encoder normalises itself)")
    _check_inputs(images, mean, std)
    device = torch.device(device)
    mean = mean.to(device, torch.float32).view(1, -1, 1, 1)
    std = std.to(device, torch.float32).view(1, -1, 1, 1)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )
    run = encoder.orientation_features if orientations else encoder
    out = []
    with eval_mode(encoder), autocast:
        for start in range(0, images.shape[0], batch_size):
            x = resize_float(to_float(images[start : start + batch_size].to(device)), size)
            if transform is not None:
                x = transform(x, labels[start : start + batch_size].to(device))
            feats = run((x - mean) / std)
            out.append((feats if orientations else feats.flatten(1)).float().cpu())
    return torch.cat(out)


def _self_normalised(
    encoder: nn.Module, images: torch.Tensor, batch_size: int, orientations: bool
) -> torch.Tensor:
    """extract_features for an encoder that checks and normalises its own input (`prepare`)."""
    prepare = getattr(encoder, "prepare", None)
    if prepare is None:
        raise UserError(
            f"mean and std are required: {type(encoder).__name__} does not normalise its input "
            "(an equissl Encoder does)"
        )
    prepare(images[:1])  # type, rank and channels checked once, before any work
    run = encoder.orientation_features if orientations else encoder
    with eval_mode(encoder):
        parts = [
            run(images[start : start + batch_size]).float().cpu()
            for start in range(0, images.shape[0], batch_size)
        ]
    if parts:
        return torch.cat(parts)
    shape = (0, encoder.num_features) + ((encoder.group_order,) if orientations else ())
    return torch.zeros(shape)
