"""What every invariance branch shares: the (loss, metrics) contract and the 2N-view halves."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

Metrics = dict[str, Tensor]


def halves(x: Tensor) -> tuple[Tensor, Tensor]:
    """The rows of view 1 and of view 2 of a 2N stack."""
    n = x.shape[0] // 2
    return x[:n], x[n:]


def per_view(fn: Callable[[Tensor], Tensor], x: Tensor, separate: bool) -> Tensor:
    """`fn` of the 2N stacked views: in one call, or one call per view (`separate`: each view
    gets its own BatchNorm batch statistics, as in E-SSL's official code)."""
    if not separate:
        return fn(x)
    x1, x2 = halves(x)
    return torch.cat([fn(x1), fn(x2)])


class Invariance(nn.Module):
    """An invariance branch: `forward(h, x)` maps backbone features `h` of the 2N invariance views
    (two views of N images, stacked) and the normalised views `x` to a loss and detached metrics.
    `query_only`: only view 1 is encoded online (h has N rows: MoCo)."""

    query_only = False

    def update_target(self, backbone: nn.Module, progress: float) -> None:
        """Per-step update outside the optimiser (a momentum encoder); none by default."""
