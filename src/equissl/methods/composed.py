"""A method is a composition: an invariance loss plus weighted equivariance terms.

SimCLR is `invariance=simclr` with no terms; E-SimCLR adds a four-fold rotation term whose
view is a small crop expanded into all four rotations, predicted by an MLP on backbone features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from equissl.augment import build_augment, normalize, resize_float, to_float
from equissl.eval.features import eval_mode
from equissl.models import build_backbone, projector, transformation_head
from equissl.objectives import nt_xent, prediction_loss
from equissl.transforms import expand_rotations
from equissl.transforms.rotation import NUM_LABELS


def _augment(name: str, size: int, scale: tuple[float, float], cfg: DictConfig):
    return build_augment(
        name,
        size,
        scale=scale,
        flip_p=cfg.flip_p,
        jitter=tuple(cfg.jitter),
        jitter_p=cfg.jitter_p,
        gray_p=cfg.gray_p,
    )


class EquivarianceTerm(nn.Module):
    """One transformation to be predicted: its view augmentation, its head and its weight."""

    def __init__(
        self, cfg: DictConfig, augment_cfg: DictConfig, image_size: int, num_features: int
    ) -> None:
        super().__init__()
        self.name = cfg.transform
        self.weight = float(cfg.weight)
        self.size = cfg.size or max(image_size // 2, 1)
        self.augment = _augment(cfg.augment, self.size, (cfg.scale_min, cfg.scale_max), augment_cfg)
        self.head = transformation_head(
            num_features, cfg.head_hidden or 4 * num_features, NUM_LABELS
        )

    def views(
        self, images: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The transformed views (4N at the term's size, float in [0, 1]) and their labels."""
        return expand_rotations(self.augment(images, generator))


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
        )
        d = self.backbone.num_features
        self.invariance = m.invariance
        self.temperature = float(m.temperature)
        self.view_size = cfg.augment.size or image_size
        self.projector = None
        if m.invariance == "simclr":
            self.projector = projector(d, m.proj_hidden or 4 * d, m.proj_dim or 4 * d)
            a = cfg.augment
            self.view_augment = _augment(
                a.invariance, self.view_size, (a.scale_min, a.scale_max), a
            )
        self.terms = nn.ModuleList(
            EquivarianceTerm(t, cfg.augment, image_size, d) for t in m.equivariance
        )
        self.classifier = nn.Linear(d, num_classes)
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("std", std.float().clone())
        self.channels_last = False

    def encode(self, views: torch.Tensor) -> torch.Tensor:
        """Backbone features of float views in [0, 1] (normalised here)."""
        x = normalize(views, self.mean, self.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.backbone(x)

    def make_views(
        self, images: torch.Tensor, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """Every view of one step: 'invariance' (2N) and per term '<i>' views plus '<i>/labels'."""
        out: dict[str, torch.Tensor] = {}
        if self.projector is not None:
            out["invariance"] = torch.cat(
                [self.view_augment(images, generator), self.view_augment(images, generator)]
            )
        for i, term in enumerate(self.terms):
            out[str(i)], out[f"{i}/labels"] = term.views(images, generator)
        return out

    def loss(
        self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss of a uint8 batch and detached metrics (device tensors, no host sync)."""
        views = self.make_views(images, generator)
        n = images.shape[0]
        metrics: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=images.device)
        probe_features = None
        if self.projector is not None:
            h = self.encode(views["invariance"])
            z = self.projector(h)
            ssl = nt_xent(z[:n], z[n:], self.temperature)
            total = total + ssl
            metrics["ssl_loss"] = ssl.detach()
            probe_features = h[:n]
        for i, term in enumerate(self.terms):
            h = self.encode(views[str(i)])
            term_loss, acc = prediction_loss(term.head(h), views[f"{i}/labels"])
            total = total + term.weight * term_loss
            metrics[f"{term.name}_loss"] = term_loss.detach()
            metrics[f"{term.name}_acc"] = acc
            if probe_features is None:
                probe_features = h[:n]
        logits = self.classifier(probe_features.detach().float())
        # Unlabeled images (label -1) are skipped; a batch with none labelled gives 0, not NaN.
        labelled = labels >= 0
        count = labelled.sum().clamp(min=1)
        per_image = F.cross_entropy(logits, labels.clamp(min=0), reduction="none")
        online_loss = (per_image * labelled).sum() / count
        hits = ((logits.argmax(1) == labels) & labelled).float().sum()
        metrics["online_acc"] = (hits / count).detach()
        metrics["online_loss"] = online_loss.detach()
        metrics["loss"] = total.detach()
        return total + online_loss, metrics

    @torch.no_grad()
    def rotation_accuracy(self, images: torch.Tensor, batch_size: int = 512) -> dict[str, float]:
        """Held-out accuracy of each rotation head: whole images resized to the term's size."""
        result: dict[str, float] = {}
        with eval_mode(self):
            for term in self.terms:
                hits = torch.zeros((), device=self.mean.device)
                for start in range(0, images.shape[0], batch_size):
                    x = to_float(images[start : start + batch_size].to(self.mean.device))
                    rotated, rot_labels = expand_rotations(resize_float(x, term.size))
                    hits += (term.head(self.encode(rotated)).argmax(1) == rot_labels).sum()
                result[f"{term.name}_acc"] = 100.0 * float(hits) / max(4 * images.shape[0], 1)
        return result
