"""VICReg: invariance, variance and covariance terms on the two views' embeddings."""

from __future__ import annotations

from torch import Tensor, nn

from equissl.methods.invariance.base import Invariance, Metrics, halves
from equissl.objectives import vicreg_loss


class VICReg(Invariance):
    """The three terms on the `projector`'s outputs (d-4d-4d-4d, 3 layers), weighted by
    `weights` (similarity, variance, covariance)."""

    def __init__(
        self, projector: nn.Module, weights: tuple[float, float, float] = (25.0, 25.0, 1.0)
    ) -> None:
        super().__init__()
        self.projector = projector
        self.weights = tuple(weights)

    def forward(self, h: Tensor, x: Tensor) -> tuple[Tensor, Metrics]:
        loss, parts = vicreg_loss(*halves(self.projector(h)), *self.weights)
        return loss, {"ssl_loss": loss.detach(), **{f"vicreg_{k}": v for k, v in parts.items()}}
