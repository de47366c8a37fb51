"""BYOL: the online network's prediction regresses an EMA target network's projection."""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from equissl.methods.invariance.base import Invariance, Metrics, halves, per_view
from equissl.objectives import byol_loss


class BYOL(Invariance):
    """Online `projector` + `predictor` regress an EMA target (a copy of `backbone` and the
    projector; heads d-8d-d/2, 4096-256 at full width); target momentum raised from
    `base_momentum` to 1 on a cosine schedule. `separate_views`: the target encodes each view in
    its own pass, as the online backbone does."""

    def __init__(
        self,
        projector: nn.Module,
        predictor: nn.Module,
        backbone: nn.Module,
        *,
        base_momentum: float = 0.99,
        separate_views: bool = False,
    ) -> None:
        super().__init__()
        self.projector = projector
        self.predictor = predictor
        self.target_backbone = copy.deepcopy(backbone)
        self.target_projector = copy.deepcopy(projector)
        for p in self.target_parameters():
            p.requires_grad_(False)
        self.base_momentum = base_momentum
        self.separate = separate_views

    def target_parameters(self):
        yield from self.target_backbone.parameters()
        yield from self.target_projector.parameters()

    def forward(self, h: Tensor, x: Tensor) -> tuple[Tensor, Metrics]:
        p1, p2 = halves(self.predictor(self.projector(h)))
        with torch.no_grad():
            h_target = per_view(self.target_backbone, x, self.separate)
            t1, t2 = halves(self.target_projector(h_target))
        loss = byol_loss(p1, p2, t1, t2)
        return loss, {"ssl_loss": loss.detach()}

    def momentum(self, progress: float) -> float:
        """BYOL's schedule: 1 - (1 - base) (cos(pi progress) + 1) / 2."""
        return 1 - (1 - self.base_momentum) * (math.cos(math.pi * min(progress, 1.0)) + 1) / 2

    @torch.no_grad()
    def update_target(self, backbone: nn.Module, progress: float) -> None:
        """Move the target towards the online `backbone` and projector (after each optimiser
        step); BatchNorm running statistics are copied, as the target is never trained."""
        tau = self.momentum(progress)
        online = [*backbone.parameters(), *self.projector.parameters()]
        torch._foreach_lerp_(list(self.target_parameters()), online, 1 - tau)
        target_buffers = [*self.target_backbone.buffers(), *self.target_projector.buffers()]
        torch._foreach_copy_(target_buffers, [*backbone.buffers(), *self.projector.buffers()])
