"""Colour jitter and grayscale on float (N, C, H, W) batches in [0, 1], one factor per image.

Semantics follow torchvision's ``ColorJitter``: brightness scales, contrast blends with the mean
of the grayscale image, saturation blends with the grayscale image (each clamped to [0, 1]),
hue rotates H in HSV. The in-place kernels (trailing underscore) avoid temporaries because the
jitter is applied to every training batch; the public wrappers leave their input alone.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor

GRAY_WEIGHTS = (0.299, 0.587, 0.114)
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)
IDENTITY_FACTORS = (1.0, 1.0, 1.0, 0.0)
# PIL's ImageOps.solarize inverts uint8 values i >= 128; PIL rounds a resampled view to
# uint8 first, and round(255 x) >= 128 exactly when x >= 0.5.
SOLARIZE_THRESHOLD = 0.5


# Hue (in turns) at which R, G and B are furthest from their peak: the centres of the
# triangle waves that turn a hue back into a colour.
_HUE_CENTRES = (0.5, 1 / 3, 2 / 3)


@functools.lru_cache(maxsize=64)
def _cached(values: tuple[float, ...], shape: tuple[int, ...], dtype, device) -> Tensor:
    return torch.tensor(values, dtype=dtype, device=device).view(shape)


def _constant(values: tuple[float, ...], x: Tensor, shape: tuple[int, ...] = (-1,)) -> Tensor:
    """A small constant tensor on ``x``'s device and dtype, built once (never modify it)."""
    return _cached(values, shape, x.dtype, x.device)


def _per_image(factor: Tensor | float, x: Tensor) -> Tensor:
    """A scalar or ``(N,)`` factor as an ``(N, 1, 1, 1)`` tensor matching ``x``."""
    factor = torch.as_tensor(factor, dtype=x.dtype, device=x.device)
    return factor.reshape(-1, 1, 1, 1)


def rgb_to_grayscale(x: Tensor) -> Tensor:
    """``(N, 3, H, W)`` -> ``(N, 1, H, W)`` luma with weights 0.299, 0.587, 0.114."""
    r, g, b = x.unbind(-3)
    gray = r * GRAY_WEIGHTS[0]
    gray.add_(g, alpha=GRAY_WEIGHTS[1]).add_(b, alpha=GRAY_WEIGHTS[2])
    return gray.unsqueeze(-3)


def grayscale(x: Tensor) -> Tensor:
    """RGB images with all three channels set to their luma (still ``(N, 3, H, W)``)."""
    return rgb_to_grayscale(x).clamp_(0, 1).expand_as(x).contiguous()


def adjust_brightness_(x: Tensor, factor: Tensor | float) -> Tensor:
    """In place: ``clamp(factor * x, 0, 1)``."""
    return x.mul_(_per_image(factor, x)).clamp_(0, 1)


def adjust_contrast_(x: Tensor, factor: Tensor | float) -> Tensor:
    """In place: blend each image with the mean of its grayscale version, clamp to [0, 1]."""
    f = _per_image(factor, x)
    channel_means = x.mean(dim=(2, 3))
    if x.shape[1] == 3:
        mean = channel_means @ _constant(GRAY_WEIGHTS, x)
    else:
        mean = channel_means.mean(dim=1)
    return x.mul_(f).add_((1 - f) * mean.view(-1, 1, 1, 1)).clamp_(0, 1)


def adjust_saturation_(x: Tensor, factor: Tensor | float) -> Tensor:
    """In place: blend each RGB image with its grayscale version, clamp to [0, 1].

    The blend ``f * x + (1 - f) * gray`` is one 3x3 matrix per image, applied as a single
    batched matmul (cheaper than building the gray image and blending).
    """
    n, channels, height, width = x.shape
    f = _per_image(factor, x).view(-1, 1, 1)
    eye = _constant((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), x, (3, 3))
    mix = torch.addcmul(f * eye, 1 - f, _constant(GRAY_WEIGHTS, x))
    blended = torch.bmm(mix, x.reshape(n, channels, height * width))
    return x.copy_(blended.view_as(x).clamp_(0, 1))


def adjust_hue_(x: Tensor, shift: Tensor | float) -> Tensor:
    """In place: rotate the HSV hue of each RGB image by ``shift`` turns (in [-0.5, 0.5]).

    Branch-free HSV: with ``p = (x - min) / chroma``, ``6 * hue = 3 + copysign(2 + pR - pG - pB,
    b - g)`` covers all six sectors, and channel k of the rotated colour is
    ``clamp(base_k + sign_k * 6 * chroma * |hue - centre_k|, min, max)``. Both keep max, min
    and chroma, as an HSV hue rotation does, and avoid per-sector masks (slow on CPU).
    """
    r, g, b = x.unbind(1)
    high = x.amax(dim=1)
    low = x.amin(dim=1)
    chroma = high - low
    signed = (g + b).sub_(r).add_(low).sub_(high, alpha=2).copysign_(b - g)
    turns = _per_image(shift, x).view(-1, 1, 1) + 1.5  # + 1 keeps frac's argument positive
    safe = chroma.clamp_min(torch.finfo(x.dtype).tiny)
    hue = torch.addcdiv(turns, signed, safe, value=1 / 6).frac_()
    torch.sub(hue.unsqueeze(1), _constant(_HUE_CENTRES, x, (1, 3, 1, 1)), out=x).abs_()
    below, above = low - chroma, high + chroma  # 2 min - max, 2 max - min
    for channel, base, slope in ((r, below, 6), (g, above, -6), (b, above, -6)):
        torch.addcmul(base, chroma, channel, value=slope, out=channel)
    return x.clamp_(low.unsqueeze(1), high.unsqueeze(1))


def adjust_brightness(x: Tensor, factor: Tensor | float) -> Tensor:
    """``clamp(factor * x, 0, 1)`` with one factor per image (torchvision semantics)."""
    return adjust_brightness_(x.clone(), factor)


def adjust_contrast(x: Tensor, factor: Tensor | float) -> Tensor:
    """Blend with the per-image mean of the grayscale image (torchvision semantics)."""
    return adjust_contrast_(x.clone(), factor)


def adjust_saturation(x: Tensor, factor: Tensor | float) -> Tensor:
    """Blend RGB images with their grayscale version (torchvision semantics)."""
    return adjust_saturation_(x.clone(), factor)


def adjust_hue(x: Tensor, shift: Tensor | float) -> Tensor:
    """Rotate the HSV hue of RGB images by ``shift`` turns (torchvision semantics)."""
    return adjust_hue_(x.clone(), shift)


def solarize_(x: Tensor, _: Tensor | None = None) -> Tensor:
    """In place: ``1 - x`` where ``x >= 0.5``, else ``x`` (PIL's ``ImageOps.solarize``)."""
    return x.copy_(torch.where(x >= SOLARIZE_THRESHOLD, 1 - x, x))


_KERNELS = (adjust_brightness_, adjust_contrast_, adjust_saturation_, adjust_hue_)


def color_jitter_(x: Tensor, factors: Tensor, order: Sequence[int]) -> Tensor:
    """In place: apply the ops listed in ``order`` (BRIGHTNESS..HUE) with ``(N, 4)`` factors."""
    for op in order:
        _KERNELS[op](x, factors[:, op])
    return x


def jitter_ranges(strength: Sequence[float]) -> tuple[tuple[float, float], ...]:
    """torchvision's factor ranges for ``(brightness, contrast, saturation, hue)`` strengths."""
    b, c, s, h = strength
    return ((max(0.0, 1 - b), 1 + b), (max(0.0, 1 - c), 1 + c), (max(0.0, 1 - s), 1 + s), (-h, h))


def sample_jitter_factors(
    n: int,
    strength: Sequence[float],
    generator: torch.Generator | None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw ``(n, 4)`` factors uniformly in ``jitter_ranges(strength)``."""
    lo, hi = zip(*jitter_ranges(strength), strict=True)
    u = torch.rand(n, 4, generator=generator, device=device)
    # Cached constants: no host-to-device copy (a sync on an accelerator) per batch.
    lo_t = _constant(tuple(lo), u)
    return u.mul_(_constant(tuple(hi), u) - lo_t).add_(lo_t)
