"""AugSelf's regression targets: the difference of two views' augmentation parameters."""

from __future__ import annotations

import torch
from torch import Tensor

PARAMS_PER_PART = 4  # crop: centre y, centre x, height, width; jitter: 4 factors


def view_parameters(
    params: dict[str, Tensor],
    parts: list[str],
    source_size: int,
    jitter: tuple[float, ...],
    mirror: Tensor,
) -> Tensor:
    """AugSelf's parameter vector of each view (hankook/AugSelf transforms.py): crop centre
    (y, x) and size (h, w) as fractions of the source, the centre's x mirrored where `mirror`
    is set; colour factors as (factor - 1) / range width for brightness, contrast and
    saturation and hue / range width, the widths 2 x the jitter strengths (0 where no jitter)."""
    columns = []
    for part in parts:
        if part == "crop":
            top, left, h, w = (params["boxes"].float() / source_size).unbind(1)
            x = left + w / 2
            x = torch.where(mirror, 1 - x, x)
            columns.append(torch.stack([top + h / 2, x, h, w], 1))
        else:
            widths = torch.tensor([2 * s if s > 0 else 1.0 for s in jitter], device=mirror.device)
            shift = torch.tensor([1.0, 1.0, 1.0, 0.0], device=mirror.device)
            columns.append((params["jitter"].float() - shift) / widths)
    return torch.cat(columns, 1)


def parameter_difference(
    first: dict[str, Tensor],
    second: dict[str, Tensor],
    parts: list[str],
    source_size: int,
    jitter: tuple[float, ...],
) -> Tensor:
    """AugSelf's regression targets of both view orders, (2N, 4 x parts): rows 0..N-1 view 1
    minus view 2, rows N..2N-1 view 2 minus view 1; the crop centres of each difference are
    mirrored in x where its first view is flipped (AugSelf's `extract_diff`)."""
    rows = []
    for a, b in ((first, second), (second, first)):
        mirror = a["flipped"].bool()
        rows.append(
            view_parameters(a, parts, source_size, jitter, mirror)
            - view_parameters(b, parts, source_size, jitter, mirror)
        )
    return torch.cat(rows)
