"""Random resized crops and horizontal flips for a whole batch at once.

Boxes follow torchvision's ``RandomResizedCrop`` (area fraction, log-aspect, ten tries, central
fallback), drawn for every image in one go. Cropping, resizing and flipping are one separable
linear map per image, ``out = Wy @ img @ Wx^T``, applied with two batched matmuls: this is
exactly bilinear interpolation of the cropped region (``align_corners=False``, no antialias,
edges clamped to the box as ``F.interpolate`` of the slice does), with the flip folded into
``Wx`` and the uint8 -> [0, 1] scaling folded into ``Wy``. With ``interpolation="bicubic"`` the
rows hold PIL's antialiased bicubic weights instead (what torchvision's
``RandomResizedCrop(interpolation=BICUBIC)`` computes on PIL images).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from equissl.augment.stats import UINT8_SCALE

TRIES = 10
INTERPOLATIONS = ("bilinear", "bicubic")
CUBIC_A = -0.5  # PIL's bicubic coefficient (and F.interpolate's with antialias=True)


@dataclass(frozen=True)
class CropSpec:
    """A random resized crop cut on the host: area fraction `scale`, aspect `ratio` (as
    torchvision's RandomResizedCrop), resized to `size` x `size` with `interpolation`."""

    size: int
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    interpolation: str = "bilinear"


def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw ``n`` crop boxes as float ``(n, 4)`` rows ``(top, left, h, w)`` in whole pixels.

    Each image gets ``TRIES`` candidates (area fraction ~ U(scale), log aspect ~ U(log ratio));
    the first one that fits the image is kept, else a central crop clamped to ``ratio``.
    Consumes one ``torch.rand(n, 2 * TRIES + 2)`` from ``generator``, whatever the outcome.
    """
    u = torch.rand(n, 2 * TRIES + 2, generator=generator, device=device)
    area_frac = scale[0] + (scale[1] - scale[0]) * u[:, :TRIES]
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[:, TRIES : 2 * TRIES])
    target = (height * width) * area_frac
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    fits = (w >= 1) & (w <= width) & (h >= 1) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # first fitting try (0 if none)
    found = fits.any(dim=1)
    fallback_h, fallback_w = _central_size(height, width, ratio)
    h = torch.where(found, h.gather(1, first).squeeze(1), fallback_h)
    w = torch.where(found, w.gather(1, first).squeeze(1), fallback_w)
    top = torch.minimum(torch.floor(u[:, -2] * (height - h + 1)), height - h)
    left = torch.minimum(torch.floor(u[:, -1] * (width - w + 1)), width - w)
    top = torch.where(found, top, (height - fallback_h) // 2)
    left = torch.where(found, left, (width - fallback_w) // 2)
    return torch.stack([top, left, h, w], dim=1)


def _central_size(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int]:
    """Size of torchvision's fallback crop: the whole image, trimmed to the allowed ratios."""
    in_ratio = width / height
    if in_ratio < min(ratio):
        return int(round(width / min(ratio))), width
    if in_ratio > max(ratio):
        return height, int(round(height * max(ratio)))
    return height, width


def full_boxes(n: int, height: int, width: int, device: torch.device | str | None = None) -> Tensor:
    """Boxes covering the whole image, ``(n, 4)``: what an uncropped view reports."""
    boxes = torch.zeros(n, 4, device=device)  # filled on the device: no host-to-device copy
    boxes[:, 2], boxes[:, 3] = height, width
    return boxes


def interpolation_matrix(
    start: Tensor, length: Tensor, in_size: int, out_size: int, reverse: Tensor | None = None
) -> Tensor:
    """Per-image bilinear resampling matrices ``(n, out_size, in_size)`` for 1-D crops.

    Row ``o`` holds the two weights that output pixel ``o`` takes from the crop
    ``[start, start + length)``: source ``(o + 0.5) * length / out_size - 0.5`` clamped to the
    crop, as ``F.interpolate(..., mode="bilinear", align_corners=False)`` computes it, spread
    as the tent weights ``max(0, 1 - |source - i|)`` over input pixels ``i``.
    ``reverse`` (bool, per image) mirrors the output, i.e. flips it.
    """
    out_idx = torch.arange(out_size, device=start.device, dtype=start.dtype)
    if reverse is not None:
        out_idx = torch.where(reverse[:, None], (out_size - 1) - out_idx, out_idx)
    src = ((out_idx + 0.5) * (length / out_size)[:, None] - 0.5).clamp_min_(0)
    src = torch.minimum(src, (length - 1)[:, None])
    # Input pixels relative to the crop start: small exact integers, so weights stay accurate.
    pixels = torch.arange(in_size, device=start.device, dtype=start.dtype) - start[:, None]
    return (src.unsqueeze(2) - pixels.unsqueeze(1)).abs_().neg_().add_(1).clamp_min_(0)


def cubic(t: Tensor) -> Tensor:
    """Keys' cubic convolution kernel with a = -0.5 at offsets ``t`` (0 beyond |t| >= 2)."""
    t = t.abs()
    a = CUBIC_A
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = (((t - 5) * t + 8) * t - 4) * a
    return torch.where(t < 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def bicubic_matrix(
    start: Tensor, length: Tensor, in_size: int, out_size: int, reverse: Tensor | None = None
) -> Tensor:
    """Per-image antialiased bicubic resampling matrices ``(n, out_size, in_size)``: PIL's.

    Output pixel ``o`` of the crop ``[start, start + length)`` is centred at
    ``c = (o + 0.5) * length / out_size`` in crop coordinates; input pixel ``p`` of the crop
    weighs ``cubic((p + 0.5 - c) / s)`` with ``s = max(length / out_size, 1)`` (the kernel is
    stretched when shrinking: antialiasing), the weights of pixels inside the crop normalised
    to sum 1. ``reverse`` mirrors the output.
    """
    out_idx = torch.arange(out_size, device=start.device, dtype=start.dtype)
    if reverse is not None:
        out_idx = torch.where(reverse[:, None], (out_size - 1) - out_idx, out_idx)
    scale = (length / out_size)[:, None, None]
    centre = (out_idx + 0.5).expand(start.shape[0], out_size).unsqueeze(2) * scale  # (n, out, 1)
    pixels = torch.arange(in_size, device=start.device, dtype=start.dtype) - start[:, None]
    pixels = pixels.unsqueeze(1)  # (n, 1, in)
    weights = cubic((pixels + 0.5 - centre) / scale.clamp_min(1))
    inside = (pixels >= 0) & (pixels < length[:, None, None])
    weights = weights * inside
    return weights / weights.sum(dim=2, keepdim=True)


def crop_matrices(
    boxes: Tensor,
    height: int,
    width: int,
    size: int,
    flipped: Tensor | None = None,
    gain: float = 1.0,
    interpolation: str = "bilinear",
) -> tuple[Tensor, Tensor]:
    """Row and column resampling matrices ``wy (N, size, H) * gain``, ``wx (N, size, W)``."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    build = bicubic_matrix if interpolation == "bicubic" else interpolation_matrix
    boxes = boxes.to(torch.float32)
    n = boxes.shape[0]
    if height == width:  # square images: build both in one go (fewer small ops)
        no_flip = torch.zeros(n, dtype=torch.bool, device=boxes.device)
        reverse = None if flipped is None else torch.cat([no_flip, flipped])
        both = build(boxes[:, :2].T.reshape(-1), boxes[:, 2:].T.reshape(-1), height, size, reverse)
        wy, wx = both[:n], both[n:]
    else:
        wy = build(boxes[:, 0], boxes[:, 2], height, size)
        wx = build(boxes[:, 1], boxes[:, 3], width, size, flipped)
    return (wy.mul_(gain) if gain != 1 else wy), wx


def apply_matrices(images: Tensor, wy: Tensor, wx: Tensor, out: Tensor | None = None) -> Tensor:
    """``wy @ image @ wx^T`` for every image and channel, in float32 (uint8 is converted)."""
    n, c, height, width = images.shape
    x = images.to(torch.float32)
    # Columns first: (N, C*H, W) @ (N, W, S) keeps channels folded into rows, no copies.
    cols = torch.bmm(x.reshape(n, c * height, width), wx.transpose(1, 2))
    return torch.matmul(wy.unsqueeze(1), cols.view(n, c, height, wx.shape[1]), out=out)


def resized_crop(
    images: Tensor,
    boxes: Tensor,
    size: int,
    flipped: Tensor | None = None,
    out: Tensor | None = None,
    interpolation: str = "bilinear",
) -> Tensor:
    """Crop each image to its box, resize to ``size`` x ``size`` and flip where asked.

    ``images``: uint8 ``(N, C, H, W)`` (result in [0, 1]) or float (result in the same units).
    ``boxes``: ``(N, 4)`` rows ``(top, left, h, w)`` in whole pixels inside the image.
    ``flipped``: optional bool ``(N,)``, mirrors those outputs left-right.
    ``out``: optional contiguous float32 ``(N, C, size, size)`` to write into.
    ``interpolation``: "bilinear" (``F.interpolate``, no antialias) or "bicubic" (PIL's).
    """
    height, width = images.shape[-2:]
    is_uint8 = images.dtype == torch.uint8
    gain = UINT8_SCALE if is_uint8 else 1.0
    wy, wx = crop_matrices(
        boxes.to(images.device), height, width, size, flipped, gain, interpolation
    )
    out = apply_matrices(images, wy, wx, out)
    return out.clamp_(0, 1) if is_uint8 else out
