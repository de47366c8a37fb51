"""SimSiam: each view's prediction regresses the other view's stopped projection."""

from __future__ import annotations

from torch import Tensor, nn

from equissl.methods.invariance.base import Invariance, Metrics, halves
from equissl.objectives import simsiam_loss


class SimSiam(Invariance):
    """Negative cosine with stop-gradient; E-SSL's CIFAR heads: projector d-4d-4d, predictor
    4d-d-4d (2048-512-2048 at full width)."""

    def __init__(self, projector: nn.Module, predictor: nn.Module) -> None:
        super().__init__()
        self.projector = projector
        self.predictor = predictor

    def forward(self, h: Tensor, x: Tensor) -> tuple[Tensor, Metrics]:
        z1, z2 = halves(self.projector(h))
        loss = simsiam_loss(self.predictor(z1), self.predictor(z2), z1, z2)
        return loss, {"ssl_loss": loss.detach()}
