"""Exact group convolutions for C4 and D4 (Cohen & Welling's p4 and p4m layers).

Feature maps are ordinary (batch, fields * |G|, H, W) tensors with the orientation axis
fastest, so every layer is a plain `conv2d` with a filter bank expanded from its free
parameters by one gather: filters rotated/mirrored on the pixel grid and orientation channels
permuted. Rotating (mirroring) the input therefore rotates every feature map and permutes its
orientation channels exactly, to float precision.

Striding keeps that exactness: a stride-2 grid is mapped onto itself by a rotation only when
the size is odd. On even sizes the layer uses the same filter averaged over a 2x2 window (a
(k+1)x(k+1) stride-2 filter: a stride-1 convolution followed by 2x2 average pooling), whose
sampling grid sits between pixels and is symmetric.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from equissl.models.groups import Group


def _blur_even_axes(weight: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The stride-2 filter equal to a stride-1 convolution followed by 2x2 average pooling,
    along each axis whose size is even (that axis' kernel grows by one)."""
    if height % 2 == 0:
        weight = (F.pad(weight, (0, 0, 0, 1)) + F.pad(weight, (0, 0, 1, 0))) / 2
    if width % 2 == 0:
        weight = (F.pad(weight, (0, 1)) + F.pad(weight, (1, 0))) / 2
    return weight


DOWNSAMPLES = ("avg", "max")


def symmetric_conv2d(
    x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, bias=None, downsample="avg"
) -> torch.Tensor:
    """conv2d whose sampling grid is symmetric under the square's symmetries (stride 1 or 2).

    Stride 2 with `downsample="avg"`: the stride-2 filter equal to a stride-1 convolution and
    2x2 average pooling (exact on every size); `"max"`: a stride-1 convolution, then 2x2 max
    pooling (Wang et al.'s EqResNet; exact on even sizes, where the 2x2 windows tile the map)."""
    if stride == 1:
        return F.conv2d(x, weight, bias, padding=padding)
    if stride != 2:
        raise ValueError("group convolutions support stride 1 or 2")
    if downsample == "max":
        return F.max_pool2d(F.conv2d(x, weight, bias, padding=padding), 2)
    weight = _blur_even_axes(weight, x.shape[-2], x.shape[-1])
    return F.conv2d(x, weight, bias, stride=2, padding=padding)


def symmetric_max_pool(x: torch.Tensor, kernel: int = 3, padding: int = 1) -> torch.Tensor:
    """Stride-2 max pooling with a symmetric grid: a (kernel+1) window on even axes."""
    k = (kernel + 1 - x.shape[-2] % 2, kernel + 1 - x.shape[-1] % 2)
    return F.max_pool2d(x, k, stride=2, padding=padding)


def _filter_index(group: Group, in_orientations: bool, kernel: int) -> torch.Tensor:
    """For each output element g, where each entry of g's filter comes from in the flattened
    free parameters (orientations x k x k): T_g spatially, input orientations s <- g^-1 s."""
    n = group.order if in_orientations else 1
    flat = torch.arange(n * kernel * kernel).reshape(n, kernel, kernel)
    rows = []
    for g in range(group.order):
        moved = group.act(flat, g)
        if in_orientations:
            moved = moved[group.table[group.inverse[g]]]
        rows.append(moved.reshape(-1))
    return torch.stack(rows)  # (|G|, n * k * k)


class GroupConv2d(nn.Module):
    """A group convolution: `lifting=True` maps an image (channels in) to fields over the
    group; otherwise fields to fields. `out_fields` fields of |G| channels each come out."""

    def __init__(
        self,
        group: Group,
        in_channels: int,
        out_fields: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        lifting: bool = False,
        bias: bool = False,
        downsample: str = "avg",
    ) -> None:
        super().__init__()
        if downsample not in DOWNSAMPLES:
            raise ValueError(
                f"downsample must be one of {', '.join(DOWNSAMPLES)}, got {downsample!r}"
            )
        self.group, self.lifting, self.downsample = group, lifting, downsample
        self.stride, self.padding, self.kernel_size = stride, padding, kernel_size
        self.out_fields = out_fields
        n = 1 if lifting else group.order
        self.weight = nn.Parameter(
            torch.empty(out_fields, in_channels, n, kernel_size, kernel_size)
        )
        self.bias = nn.Parameter(torch.zeros(out_fields)) if bias else None  # one per field
        self.register_buffer(
            "index", _filter_index(group, not lifting, kernel_size), persistent=False
        )
        fan_out = out_fields * group.order * kernel_size**2
        nn.init.normal_(self.weight, std=math.sqrt(2.0 / fan_out))  # He init, fan-out mode

    def filters(self) -> torch.Tensor:
        """The expanded (out_fields * |G|, in_channels [* |G|], k, k) filter bank."""
        co, ci, n, k, _ = self.weight.shape
        g = self.group.order
        flat = self.weight.reshape(co, ci, n * k * k)[:, :, self.index]  # (co, ci, |G|, n*k*k)
        return flat.transpose(1, 2).reshape(co * g, ci * n, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None
        if self.bias is not None:
            bias = self.bias.repeat_interleave(self.group.order)
        return symmetric_conv2d(x, self.filters(), self.stride, self.padding, bias, self.downsample)


class GroupBatchNorm(nn.Module):
    """Batch norm with statistics, scale and shift shared by the |G| channels of each field
    (per-channel statistics would break equivariance)."""

    def __init__(self, group: Group, fields: int) -> None:
        super().__init__()
        self.order = group.order
        self.bn = nn.BatchNorm3d(fields)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return self.bn(x.view(b, c // self.order, self.order, h, w)).view(b, c, h, w)
