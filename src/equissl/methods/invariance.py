"""Invariance branches: the heads and loss that make two views of an image agree.

Each branch maps backbone features of the 2N invariance views (two views of N images, stacked)
to a loss and detached metrics. Head sizes follow each method's CIFAR recipe at full width
(backbone features d = 512) and scale with d, so narrow CPU backbones get narrow heads.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from equissl.models import KeyQueue, mlp, projector
from equissl.objectives import (
    barlow_twins_loss,
    byol_loss,
    info_nce,
    moco_loss,
    nt_xent,
    simsiam_loss,
    vicreg_loss,
)

Metrics = dict[str, Tensor]


def _halves(x: Tensor) -> tuple[Tensor, Tensor]:
    n = x.shape[0] // 2
    return x[:n], x[n:]


def per_view(fn, x: Tensor, separate: bool) -> Tensor:
    """`fn` of the 2N stacked views: in one call, or one call per view (`separate`: each view
    gets its own BatchNorm batch statistics, as in E-SSL's official code)."""
    if not separate:
        return fn(x)
    x1, x2 = _halves(x)
    return torch.cat([fn(x1), fn(x2)])


def _projector(
    m: DictConfig, d: int, hidden: int = 0, out: int = 0, norm: str = "both"
) -> nn.Sequential:
    """The configured projector: the method's recipe (`hidden`, `out`, default 4d; `norm`) unless
    the config sets its sizes, layers (E-SSL's ImageNet ones: 3) or BatchNorm placement."""
    hidden, out = m.proj_hidden or hidden or 4 * d, m.proj_dim or out or 4 * d
    norm = norm if m.proj_norm == "auto" else m.proj_norm
    return projector(d, hidden, out, norm, m.proj_layers or 2, bool(m.proj_last_affine))


class SimCLR(nn.Module):
    """Contrastive loss on E-SSL's projector (d-4d-4d, 2048-2048 at full width), temperature
    0.5: the SimCLR paper's NT-Xent (`negatives=both_views`) or E-SSL's official cross-view
    InfoNCE (`other_view`)."""

    def __init__(self, m: DictConfig, d: int) -> None:
        super().__init__()
        self.projector = _projector(m, d)
        self.temperature = float(m.temperature)
        self.contrast = info_nce if m.negatives == "other_view" else nt_xent

    def forward(self, h: Tensor, x: Tensor) -> tuple[Tensor, Metrics]:
        loss = self.contrast(*_halves(self.projector(h)), self.temperature)
        return loss, {"ssl_loss": loss.detach()}


class MoCo(nn.Module):
    """MoCo-v2: the query (view 1, through the online backbone and projector) against its key
    (view 2, through a momentum copy of both) and a queue of earlier keys; projector d-d-128
    without BatchNorm (MoCo-v2's), temperature `method.temperature` (0.2 in MoCo-v2), queue
    `moco_queue`, constant momentum `moco_momentum`. Only view 1 goes through the online
    backbone (`query_only`): the loss is MoCo's, not symmetrised."""

    query_only = True  # the composed method encodes only the first invariance view online

    def __init__(self, m: DictConfig, d: int, backbone: nn.Module) -> None:
        super().__init__()
        self.projector = _projector(m, d, hidden=d, out=128, norm="none")
        self.key_backbone = copy.deepcopy(backbone)
        self.key_projector = copy.deepcopy(self.projector)
        for p in self.key_parameters():
            p.requires_grad_(False)
        self.queue = KeyQueue(int(m.moco_queue), m.proj_dim or 128)
        self.temperature = float(m.temperature)
        self.momentum = float(m.moco_momentum)

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


class SimSiam(nn.Module):
    """Negative cosine with stop-gradient; E-SSL's CIFAR heads: projector d-4d-4d, predictor
    4d-d-4d (2048-512-2048 at full width)."""

    def __init__(self, m: DictConfig, d: int) -> None:
        super().__init__()
        out = m.proj_dim or 4 * d
        self.projector = _projector(m, d)
        self.predictor = mlp(out, m.pred_hidden or d, out, layers=2)

    def forward(self, h: Tensor, x: Tensor) -> tuple[Tensor, Metrics]:
        z1, z2 = _halves(self.projector(h))
        loss = simsiam_loss(self.predictor(z1), self.predictor(z2), z1, z2)
        return loss, {"ssl_loss": loss.detach()}


class BYOL(nn.Module):
    """Online projector + predictor regress an EMA target (backbone and projector); heads d-8d-d/2
    (4096-256 at full width); target momentum raised from `ema` to 1 on a cosine schedule."""

    def __init__(self, m: DictConfig, d: int, backbone: nn.Module) -> None:
        super().__init__()
        out = m.proj_dim or max(d // 2, 1)
        hidden = m.proj_hidden or 8 * d
        self.projector = mlp(d, hidden, out, layers=m.proj_layers or 2)
        self.predictor = mlp(out, m.pred_hidden or hidden, out, layers=2)
        self.target_backbone = copy.deepcopy(backbone)
        self.target_projector = copy.deepcopy(self.projector)
        for p in self.target_parameters():
            p.requires_grad_(False)
        self.base_momentum = float(m.ema)
        self.separate = m.view_passes == "separate"

    def target_parameters(self):
        yield from self.target_backbone.parameters()
        yield from self.target_projector.parameters()

    def forward(self, h: Tensor, x: Tensor) -> tuple[Tensor, Metrics]:
        p1, p2 = _halves(self.predictor(self.projector(h)))
        with torch.no_grad():
            h_target = per_view(self.target_backbone, x, self.separate)
            t1, t2 = _halves(self.target_projector(h_target))
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


class BarlowTwins(nn.Module):
    """Cross-correlation to the identity; projector d-4d-4d-4d (3 layers, 2048 at full width)."""

    def __init__(self, m: DictConfig, d: int) -> None:
        super().__init__()
        self.projector = mlp(d, m.proj_hidden or 4 * d, m.proj_dim or 4 * d, m.proj_layers or 3)
        self.lambd, self.scale = float(m.barlow_lambda), float(m.barlow_scale)

    def forward(self, h: Tensor, x: Tensor) -> tuple[Tensor, Metrics]:
        z1, z2 = _halves(self.projector(h))
        loss = barlow_twins_loss(z1, z2, self.lambd, self.scale)
        return loss, {"ssl_loss": loss.detach()}


class VICReg(nn.Module):
    """Invariance, variance and covariance terms; projector d-4d-4d-4d (3 layers)."""

    def __init__(self, m: DictConfig, d: int) -> None:
        super().__init__()
        self.projector = mlp(d, m.proj_hidden or 4 * d, m.proj_dim or 4 * d, m.proj_layers or 3)
        self.weights = tuple(float(w) for w in m.vicreg_weights)

    def forward(self, h: Tensor, x: Tensor) -> tuple[Tensor, Metrics]:
        loss, parts = vicreg_loss(*_halves(self.projector(h)), *self.weights)
        return loss, {"ssl_loss": loss.detach(), **{f"vicreg_{k}": v for k, v in parts.items()}}


def build_invariance(m: DictConfig, d: int, backbone: nn.Module) -> nn.Module | None:
    """The branch named by `method.invariance`, or None for `none` (a pure pretext task)."""
    if m.invariance == "none":
        return None
    if m.invariance == "byol":
        return BYOL(m, d, backbone)
    if m.invariance == "moco":
        return MoCo(m, d, backbone)
    return {"simclr": SimCLR, "simsiam": SimSiam, "barlow_twins": BarlowTwins, "vicreg": VICReg}[
        m.invariance
    ](m, d)
