"""A method is a composition: an invariance branch plus weighted equivariance terms.

SimCLR is `invariance=simclr` with no terms; E-SimCLR adds a four-fold rotation term whose
view is a small crop expanded into all four rotations, predicted by an MLP on backbone features.
A transformation with role `invariance` is applied at random to the invariance views instead;
`invariance=none` with one or more terms is a pure pretext task (Wang et al.). An online linear
classifier reads backbone features; its class loss may also reach the encoder (`joint`) or push
class information out of it (`eliminate`), Wang et al.'s Figure 4 modes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from equissl.augment import normalize, resize_float, to_float
from equissl.eval.features import eval_mode
from equissl.methods.invariance import BYOL, MoCo, build_invariance, per_view
from equissl.methods.terms import EquivarianceTerm, make_augment, parameter_difference
from equissl.models import build_backbone
from equissl.objectives.care import full_precision
from equissl.transforms import get_transformation


def term_names(terms: list[DictConfig]) -> list[str]:
    """Metric names of the active equivariance terms: the transformation, with the mode when it
    is not `predict`, and an index where two terms would share a name."""
    names = []
    for i, t in enumerate(terms):
        name = str(t.transform) + ("" if t.mode == "predict" else f"_{t.mode}")
        names.append(name if name not in names else f"{name}{i}")
    return names


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor):
    """Mean CE and accuracy over labelled images (label -1 is skipped; none labelled gives 0)."""
    labelled = labels >= 0
    count = labelled.sum().clamp(min=1)
    per_image = F.cross_entropy(logits.float(), labels.clamp(min=0), reduction="none")
    hits = ((logits.argmax(1) == labels) & labelled).float().sum()
    return (per_image * labelled).sum() / count, (hits / count).detach()


class Method(nn.Module):
    """Backbone, heads and losses of one composed method; independent of the training loop."""

    def __init__(
        self,
        cfg: DictConfig,
        *,
        in_channels: int,
        image_size: int,
        num_classes: int,
        mean: torch.Tensor,
        std: torch.Tensor,
    ) -> None:
        super().__init__()
        m = cfg.method
        self.backbone = build_backbone(
            cfg.backbone.name,
            stem=cfg.backbone.stem,
            width=cfg.backbone.width,
            in_channels=in_channels,
            group=cfg.backbone.group,
            fields=cfg.backbone.fields,
            downsample=cfg.backbone.downsample,
            dropout=cfg.backbone.dropout,
            pool=cfg.backbone.pool,
            image_size=image_size,
            zero_init_residual=cfg.backbone.zero_init_residual,
        )
        if cfg.backbone.frozen:
            self.backbone.requires_grad_(False)
        d = self.backbone.num_features
        self.view_size = cfg.augment.size or image_size
        self.invariance = build_invariance(m, d, self.backbone)
        self.separate_views = m.view_passes == "separate"
        self.query_only = bool(getattr(self.invariance, "query_only", False))
        if self.invariance is not None:
            a = cfg.augment
            scale = (a.scale_min, a.scale_max)
            # One pipeline per invariance view: they differ only in their blur and
            # solarisation probabilities (E-SSL's ImageNet views: blur 1.0 / 0.1, solarise 0 / 0.2).
            self.view_augments = [
                make_augment(a.invariance, self.view_size, scale, a, view) for view in (0, 1)
            ]
            self.view_augment = self.view_augments[0]
        active = [t for t in m.equivariance if t.role == "equivariance"]
        self.invariant_transforms = [
            get_transformation(t.transform, self.view_size, in_channels)
            for t in m.equivariance
            if t.role == "invariance"
        ]
        self.terms = nn.ModuleList(
            EquivarianceTerm(
                t,
                cfg.augment,
                image_size=image_size,
                channels=in_channels,
                num_features=d,
                head_features=d * self.backbone.group_order,
                name=name,
                own_projector=self.shared_projector is None,
            )
            for t, name in zip(active, term_names(active), strict=True)
        )
        # The first predicted term's accuracy is also logged as `transform_acc`, one name
        # across runs of different transformations.
        self.first_predicted = next((t.name for t in self.terms if t.mode == "predict"), None)
        self.classifier = nn.Linear(d, num_classes)
        self.classifier_mode = m.classifier
        self.class_weight = float(m.class_weight)
        # Wang et al.'s verification.py: one optimiser over every parameter, so the signed class
        # term trains the classifier too; its `add` mode has no other classifier loss, and its
        # `eliminate` mode steps the classifier again on the accumulated (1 - w) CE gradient.
        self.signed_classifier = m.classifier_grad == "signed"
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("std", std.float().clone())
        self.channels_last = False

    @property
    def shared_projector(self) -> nn.Module | None:
        """The invariance branch's projector, which CARE terms embed with (the official CARE code
        shares SimCLR's); None for methods without one. Not a second registration: checkpoints
        keep one copy of its weights."""
        return getattr(self.invariance, "projector", None)

    def _reuses_invariance_views(self, term: EquivarianceTerm) -> bool:
        # AugSelf regresses the parameters of the invariance views when there are some.
        return term.mode == "regress" and self.invariance is not None

    def normalize(self, views: torch.Tensor) -> torch.Tensor:
        x = normalize(views, self.mean, self.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def encode(self, views: torch.Tensor) -> torch.Tensor:
        """Backbone features of float views in [0, 1] (normalised here)."""
        return self.backbone(self.normalize(views))

    def encode_for(self, term: EquivarianceTerm, views: torch.Tensor) -> torch.Tensor:
        """What `term` reads: the flattened orientation features (an EqResNet's group axis,
        which its invariant representation pools away), or for `care` terms the
        representation its projector embeds."""
        if term.mode == "care":  # its two copies: one pass, or one each (view_passes=separate)
            return per_view(self.backbone, self.normalize(views), self.separate_views)
        return self.backbone.orientation_features(self.normalize(views)).flatten(1)

    def make_views(
        self, images: torch.Tensor, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """Every view of one step: 'invariance' (2N) and per term '<i>' views and '<i>/targets'.
        Always float32: a mixed-precision step's autocast is off here (the crops' resampling
        matmuls would otherwise run, and fail to write their float32 output, in bf16)."""
        with full_precision(images.device):
            return self._make_views(images, generator)

    def _make_views(
        self, images: torch.Tensor, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        if self.invariance is not None:
            params = any(self._reuses_invariance_views(t) for t in self.terms)
            draws = [aug(images, generator, return_params=params) for aug in self.view_augments]
            if params:
                (v1, p1), (v2, p2) = draws
                for i, term in enumerate(self.terms):
                    if self._reuses_invariance_views(term):
                        out[f"{i}/targets"] = parameter_difference(
                            p1, p2, term.parts, images.shape[-1], self.view_augment.jitter
                        )
                draws = [v1, v2]
            views = torch.cat(draws)
            for t in self.invariant_transforms:
                labels = t.sample(views.shape[0], generator, views.device)
                views = t.apply_drawn(views, labels, generator)
            out["invariance"] = views
        for i, term in enumerate(self.terms):
            if not self._reuses_invariance_views(term):
                out[str(i)], out[f"{i}/targets"] = term.views(images, generator)
        return out

    def loss(
        self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss of a uint8 batch and detached metrics (device tensors, no host sync)."""
        views = self.make_views(images, generator)
        n = images.shape[0]
        metrics: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=images.device)
        probe = h_inv = o_inv = None
        if self.invariance is not None:
            x = self.normalize(views["invariance"])
            # reusing terms read o_inv too; MoCo encodes only its query view online
            o_inv = self.invariance_orientations(x[:n] if self.query_only else x)
            h_inv = o_inv.mean(-1)
            ssl, parts = self.invariance(h_inv, x)
            total = total + ssl
            metrics.update(parts)
            probe = h_inv[:n]
        for i, term in enumerate(self.terms):
            if self._reuses_invariance_views(term):
                h = o_inv.flatten(1)
            else:
                h = self.encode_for(term, views[str(i)])
            term_loss, parts = term.loss(h, views[f"{i}/targets"], self.shared_projector)
            total = total + term.weight * term_loss
            metrics.update(parts)
            if probe is None:  # the classifier reads the representation, not the orientations
                probe = h[:n] if term.mode == "care" else self._pool_orientations(h[:n])
        if self.first_predicted is not None:
            metrics["transform_acc"] = metrics[f"{self.first_predicted}_acc"]
        online_loss, metrics["online_acc"] = masked_cross_entropy(
            self.classifier(probe.detach().float()), labels
        )
        metrics["online_loss"] = online_loss.detach()
        online_weight = 1.0
        if self.classifier_mode != "detached":
            sign = 1.0 if self.classifier_mode == "joint" else -1.0
            class_loss = self._class_loss(probe, labels)
            total = total + sign * self.class_weight * class_loss
            metrics["class_loss"] = class_loss.detach()
            if self.signed_classifier:
                online_weight = 0.0 if sign > 0 else 1.0 - self.class_weight
        metrics["loss"] = total.detach()
        return total + online_weight * online_loss, metrics

    def _class_loss(self, probe: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The class CE of the joint / eliminate modes: through a frozen copy of the online
        classifier (`classifier_grad=online`), or through the classifier itself (`signed`)."""
        w, b = self.classifier.weight, self.classifier.bias
        if not self.signed_classifier:
            w, b = w.detach(), b.detach()
        return masked_cross_entropy(F.linear(probe.float(), w, b), labels)[0]

    def invariance_orientations(self, x: torch.Tensor) -> torch.Tensor:
        """Orientation features of the 2N normalised invariance views: one backbone pass, or
        one per view with `method.view_passes=separate` (N views, MoCo's queries: one pass)."""
        if self.query_only:
            return self.backbone.orientation_features(x)
        return per_view(self.backbone.orientation_features, x, self.separate_views)

    def _pool_orientations(self, h: torch.Tensor) -> torch.Tensor:
        return h.view(h.shape[0], -1, self.backbone.group_order).mean(-1)

    def embedding_head(self) -> nn.Module | None:
        """The projector whose (L2-normalised) output is the method's embedding: the first CARE
        term's own projector, else the invariance branch's; None when there is none."""
        own = (t.projector for t in self.terms if t.projector is not None)
        return next(own, self.shared_projector)

    @torch.no_grad()
    def after_step(self, progress: float) -> None:
        """Per-step updates outside the optimiser (BYOL's target, MoCo's key encoder); progress
        in [0, 1]."""
        if isinstance(self.invariance, (BYOL, MoCo)):
            self.invariance.update_target(self.backbone, progress)

    @torch.no_grad()
    def transformation_accuracy(
        self, images: torch.Tensor, batch_size: int = 512, limit: int | None = None
    ) -> dict[str, float]:
        """Held-out accuracy (percent) of each `predict` head on whole images resized to the
        term's size, every element of the transformation applied to each image."""
        result: dict[str, float] = {}
        images = images[:limit]
        with eval_mode(self):
            for term in self.terms:
                if term.mode != "predict":
                    continue
                k = term.transformation.num_labels
                chunk = max(batch_size // k, 1)
                hits = torch.zeros((), device=self.mean.device)
                for start in range(0, images.shape[0], chunk):
                    x = to_float(images[start : start + chunk].to(self.mean.device))
                    views, labels = term.transformation.expand(resize_float(x, term.size))
                    hits += (term.predict(self.encode_for(term, views)) == labels).sum()
                total = max(k * images.shape[0], 1)
                result[f"{term.name}_acc"] = 100.0 * float(hits) / total
        return result
