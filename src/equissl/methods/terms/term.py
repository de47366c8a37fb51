"""The protocol every equivariance term follows: two methods, a name, a weight."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

Metrics = dict[str, Tensor]


class Term(Protocol):
    """A term of a method. `views` draws its views (float in [0, 1]; None where it reads the
    invariance views) and their targets from a uint8 batch; `loss` maps backbone features of
    those views and the targets to its unweighted loss and detached metrics. `representation`:
    it reads the pooled representation, else the flattened orientation features (an EqResNet's
    group axis, which the representation pools away)."""

    name: str
    weight: float
    representation: bool

    def views(self, images: Tensor, generator: torch.Generator) -> tuple[Tensor | None, Tensor]: ...

    def loss(self, features: Tensor, targets: Tensor) -> tuple[Tensor, Metrics]: ...
