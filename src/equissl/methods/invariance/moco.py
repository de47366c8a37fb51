"""MoCo-v2: a query against its momentum-encoded key and a queue of earlier keys."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from equissl.methods.invariance.base import Invariance, Metrics
from equissl.models import KeyQueue
from equissl.objectives import moco_loss


class MoCo(Invariance):
    """The query (view 1, through the online backbone and `projector`) against its key (view 2,
    through a momentum copy of both) and a queue of `queue_size` earlier keys of dimension
    `dim`; constant `momentum` (MoCo-v2: 0.999, temperature 0.2, projector d-d-128 without
    BatchNorm). Only view 1 goes through the online backbone (`query_only`): the loss is
    MoCo's, not symmetrised."""

    query_only = True

    def __init__(
        self,
        projector: nn.Module,
        backbone: nn.Module,
        *,
        queue_size: int,
        dim: int,
        temperature: float,
        momentum: float,
    ) -> None:
        super().__init__()
        self.projector = projector
        self.key_backbone = copy.deepcopy(backbone)
        self.key_projector = copy.deepcopy(projector)
        for p in self.key_parameters():
            p.requires_grad_(False)
        self.queue = KeyQueue(queue_size, dim)
        self.temperature = temperature
        self.momentum = momentum

    def key_parameters(self):
        yield from self.key_backbone.parameters()
        yield from self.key_projector.parameters()

    def forward(self, h: Tensor, x: Tensor) -> tuple[Tensor, Metrics]:
        """`h`: online features of view 1 (N rows); `x`: both normalised views (2N)."""
        q = self.projector(h)
        with torch.no_grad():
            k = F.normalize(self.key_projector(self.key_backbone(x[h.shape[0] :])).float(), dim=1)
        # A copy: the push below overwrites the queue the backward pass reads.
        loss = moco_loss(q, k, self.queue.keys.clone(), self.temperature)
        self.queue.push(k)  # after the loss: this step's keys are not their own negatives
        return loss, {"ssl_loss": loss.detach()}

    @torch.no_grad()
    def update_target(self, backbone: nn.Module, progress: float) -> None:
        """key <- m key + (1 - m) query for the parameters (after each optimiser step, which
        is where MoCo's update before the next key pass lands); the key encoder's BatchNorm
        statistics are its own, as MoCo's."""
        online = [*backbone.parameters(), *self.projector.parameters()]
        torch._foreach_lerp_(list(self.key_parameters()), online, 1 - self.momentum)
