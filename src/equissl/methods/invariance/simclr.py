"""SimCLR: the two views of an image are each other's positive among the batch's embeddings."""

from __future__ import annotations

from torch import Tensor, nn

from equissl.methods.invariance.base import Invariance, Metrics, halves
from equissl.objectives import info_nce, nt_xent


class SimCLR(Invariance):
    """Contrastive loss on a projector (E-SSL's d-4d-4d, 2048-2048 at full width) at
    `temperature`: the SimCLR paper's NT-Xent (`cross_view=False`, 2N-2 negatives per anchor) or
    E-SSL's official cross-view InfoNCE (`cross_view=True`, the other view's N-1)."""

    def __init__(self, projector: nn.Module, temperature: float = 0.5, cross_view: bool = False):
        super().__init__()
        self.projector = projector
        self.temperature = temperature
        self.contrast = info_nce if cross_view else nt_xent

    def forward(self, h: Tensor, x: Tensor) -> tuple[Tensor, Metrics]:
        loss = self.contrast(*halves(self.projector(h)), self.temperature)
        return loss, {"ssl_loss": loss.detach()}
