"""A method: a backbone, an invariance branch and weighted equivariance terms, one loss a step.

E-SimCLR is `SimCLR` plus a `Predict` term (rotations of small crops); CARE is `SimCLR` plus a
`Care` term embedding with SimCLR's projector; without an invariance branch the terms are a
pure pretext task (Wang et al.). Every part arrives built (`build.py` reads the configuration).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from equissl.augment import normalize
from equissl.methods.classifier import OnlineClassifier
from equissl.methods.invariance import Invariance, per_view
from equissl.methods.terms import Term
from equissl.methods.views import InvarianceViews
from equissl.objectives.care import full_precision


class Method(nn.Module):
    """`backbone`; an `invariance` branch on the 2N `views` it draws (or None: no views);
    `terms`; an online `classifier`; `mean`/`std` normalise views; `separate_views`: one
    backbone pass per invariance view (own BatchNorm statistics, E-SSL's official code)."""

    def __init__(
        self,
        backbone: nn.Module,
        invariance: Invariance | None,
        views: InvarianceViews | None,
        terms: Sequence[Term],
        classifier: OnlineClassifier,
        *,
        mean: Tensor,
        std: Tensor,
        separate_views: bool = False,
    ) -> None:
        super().__init__()
        self.backbone, self.invariance, self.views = backbone, invariance, views
        self.terms, self.classifier = nn.ModuleList(terms), classifier
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("std", std.float().clone())
        self.separate_views, self.channels_last = separate_views, False
        # the first predicted term's accuracy is also `transform_acc`: one name across runs
        self.first_predicted = next((t.name for t in terms if hasattr(t, "predict")), None)

    def normalize(self, views: Tensor) -> Tensor:
        x = normalize(views, self.mean, self.std)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def encode(self, views: Tensor) -> Tensor:
        """Backbone features of float views in [0, 1]."""
        return self.backbone(self.normalize(views))

    def encode_for(self, term: Term, views: Tensor) -> Tensor:
        """What `term` reads: the representation (one pass per copy with separate view passes)
        or the flattened orientation features (an EqResNet's group axis, pooled away in it)."""
        if term.representation:
            return per_view(self.backbone, self.normalize(views), self.separate_views)
        return self.backbone.orientation_features(self.normalize(views)).flatten(1)

    def make_views(self, images: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        """Every view of a uint8 batch: 'invariance' (2N), per term '<i>' (absent where it reads
        the invariance views) and '<i>/targets'; float32 (autocast off: resampling in bf16 fails)."""
        out: dict[str, Tensor] = {}
        with full_precision(images.device):
            if self.views is not None:
                out["invariance"] = self.views(images, generator)
            for i, term in enumerate(self.terms):
                views, out[f"{i}/targets"] = term.views(images, generator)
                if views is not None:
                    out[str(i)] = views
        return out

    def loss(
        self, images: Tensor, labels: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss of a uint8 batch and detached metrics (device tensors, no host sync)."""
        views, n = self.make_views(images, generator), images.shape[0]
        metrics: dict[str, Tensor] = {}
        total, probe, o_inv = torch.zeros((), device=images.device), None, None
        if self.invariance is not None:
            x = self.normalize(views["invariance"])
            o_inv = self.invariance_orientations(x[:n] if self.invariance.query_only else x)
            ssl, parts = self.invariance(h_inv := o_inv.mean(-1), x)
            total, probe = total + ssl, h_inv[:n]
            metrics.update(parts)
        for i, term in enumerate(self.terms):
            h = self.encode_for(term, views[str(i)]) if str(i) in views else o_inv.flatten(1)
            term_loss, parts = term.loss(h, views[f"{i}/targets"])
            total = total + term.weight * term_loss
            metrics.update(parts)
            if probe is None:  # the classifier reads the representation, not the orientations
                probe = h[:n] if term.representation else self.pool_orientations(h[:n])
        if (first := self.first_predicted) is not None:
            metrics["transform_acc"] = metrics[f"{first}_acc"]
        total, online = self.classifier.loss(probe, labels, total, metrics)
        metrics["loss"] = total.detach()
        return total + online, metrics

    def invariance_orientations(self, x: Tensor) -> Tensor:
        """Orientation features of normalised invariance views (MoCo's N queries: one pass)."""
        separate = self.separate_views and not self.invariance.query_only
        return per_view(self.backbone.orientation_features, x, separate)

    def pool_orientations(self, h: Tensor) -> Tensor:
        return h.view(h.shape[0], -1, self.backbone.group_order).mean(-1)

    def embedding_head(self) -> nn.Module | None:
        """The projector of the method's embedding: the first term's own, else the invariance
        branch's; None without one."""
        own = [p for t in self.terms if (p := getattr(t, "projector", None)) is not None]
        return (own or [getattr(self.invariance, "projector", None)])[0]

    @torch.no_grad()
    def after_step(self, progress: float) -> None:
        """Per-step updates outside the optimiser (BYOL's target, MoCo's keys); progress in [0, 1]."""
        if self.invariance is not None:
            self.invariance.update_target(self.backbone, progress)
