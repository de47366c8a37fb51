"""Barlow Twins: the two views' cross-correlation matrix is pulled to the identity."""

from __future__ import annotations

from torch import Tensor, nn

from equissl.methods.invariance.base import Invariance, Metrics, halves
from equissl.objectives import barlow_twins_loss


class BarlowTwins(Invariance):
    """Cross-correlation of the `projector`'s outputs (d-4d-4d-4d, 3 layers) to the identity,
    off-diagonal weight `lambd`, the whole scaled by `scale`."""

    def __init__(self, projector: nn.Module, lambd: float = 0.0051, scale: float = 0.1) -> None:
        super().__init__()
        self.projector = projector
        self.lambd, self.scale = lambd, scale

    def forward(self, h: Tensor, x: Tensor) -> tuple[Tensor, Metrics]:
        z1, z2 = halves(self.projector(h))
        loss = barlow_twins_loss(z1, z2, self.lambd, self.scale)
        return loss, {"ssl_loss": loss.detach()}
