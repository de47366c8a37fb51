"""Equivariance terms: a transformation whose element (or view parameters) the encoder predicts.

Modes: `predict` (cross-entropy on the label of the element applied, E-SSL), `relative` (the
element relating two transformed copies of an image, E-SSL appendix H), `regress` (the
difference of two views' crop boxes and colour-jitter strengths, AugSelf) and `care` (Gram
matching of two copies transformed by one pair of elements per chunk, so that the
transformation acts as an orthogonal map of the embedding; CARE, Gupta et al.). The transform
`augment` with mode `care` is the term's whole base augmentation, drawn once per chunk.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from equissl.augment import build_augment
from equissl.chunks import chunk_count, chunk_ids
from equissl.errors import ConfigError
from equissl.models import mlp, plain_head, projector, transformation_head
from equissl.objectives import (
    care_loss,
    infonce_uniformity,
    prediction_loss,
    uniformity_loss,
)
from equissl.transforms import get_transformation

Metrics = dict[str, Tensor]
PARAMS_PER_PART = 4  # crop: centre y, centre x, height, width; jitter: 4 factors
AUGMENT = "augment"  # mode care: the base augmentation itself is the transformation


def make_augment(
    name: str, size: int, scale: tuple[float, float], cfg: DictConfig, view: int | None = None
):
    """A base augmentation pipeline with the colour settings of the `augment` config: for
    invariance view `view` (0 or 1: its blur and solarisation probabilities, the configured
    interpolation) or, with None, for an equivariance term (`term_blur_p`, `term_solarize_p`,
    bilinear crops). A crop of scale (1, 1) is the whole image (ratio 1: torchvision's
    RandomCrop(size) on a size x size image, Wang et al.'s "crop"), so its crop+flip is a flip
    only."""
    whole = tuple(scale) == (1.0, 1.0)
    blur_p = cfg.term_blur_p if view is None else cfg.blur_p[view]
    solarize_p = cfg.term_solarize_p if view is None else cfg.solarize_p[view]
    return build_augment(
        name,
        size,
        scale=scale,
        ratio=(1.0, 1.0) if whole else (3 / 4, 4 / 3),
        flip_p=cfg.flip_p,
        jitter=tuple(cfg.jitter),
        jitter_p=cfg.jitter_p,
        gray_p=cfg.gray_p,
        interpolation="bilinear" if view is None else cfg.interpolation,
        blur_p=blur_p,
        blur_kernel=cfg.blur_kernel,
        blur_sigma=tuple(cfg.blur_sigma),
        solarize_p=solarize_p,
    )


def view_parameters(
    params: dict[str, Tensor],
    parts: list[str],
    source_size: int,
    jitter: tuple[float, ...],
    mirror: Tensor,
) -> Tensor:
    """AugSelf's parameter vector of each view (hankook/AugSelf transforms.py): crop centre
    (y, x) and size (h, w) as fractions of the source, the centre's x mirrored where `mirror`
    is set; colour factors as (factor - 1) / range width for brightness, contrast and
    saturation and hue / range width, the widths 2 x the jitter strengths (0 where no jitter)."""
    columns = []
    for part in parts:
        if part == "crop":
            top, left, h, w = (params["boxes"].float() / source_size).unbind(1)
            x = left + w / 2
            x = torch.where(mirror, 1 - x, x)
            columns.append(torch.stack([top + h / 2, x, h, w], 1))
        else:
            widths = torch.tensor([2 * s if s > 0 else 1.0 for s in jitter], device=mirror.device)
            shift = torch.tensor([1.0, 1.0, 1.0, 0.0], device=mirror.device)
            columns.append((params["jitter"].float() - shift) / widths)
    return torch.cat(columns, 1)


def parameter_difference(
    first: dict[str, Tensor],
    second: dict[str, Tensor],
    parts: list[str],
    source_size: int,
    jitter: tuple[float, ...],
) -> Tensor:
    """AugSelf's regression targets of both view orders, (2N, 4 x parts): rows 0..N-1 view 1
    minus view 2, rows N..2N-1 view 2 minus view 1; the crop centres of each difference are
    mirrored in x where its first view is flipped (AugSelf's `extract_diff`)."""
    rows = []
    for a, b in ((first, second), (second, first)):
        mirror = a["flipped"].bool()
        rows.append(
            view_parameters(a, parts, source_size, jitter, mirror)
            - view_parameters(b, parts, source_size, jitter, mirror)
        )
    return torch.cat(rows)


class EquivarianceTerm(nn.Module):
    """One term of a method: its view augmentation, its transformation, heads and weight."""

    def __init__(
        self,
        cfg: DictConfig,
        augment_cfg: DictConfig,
        *,
        image_size: int,
        channels: int,
        num_features: int,
        name: str,
        own_projector: bool = False,
        head_features: int = 0,
    ) -> None:
        """`num_features`: the backbone's representation (what `care` terms embed);
        `head_features`: what the heads of the other modes read (an EqResNet's orientation
        features, |G| times wider; 0: the representation). `own_projector`: a `care` term
        embeds with its own projector (d-4d-4d) instead of the invariance branch's (for methods
        without one, e.g. a pure pretext task)."""
        super().__init__()
        self.name = name
        self.mode = cfg.mode
        self.weight = float(cfg.weight)
        self.expand = bool(cfg.expand) and cfg.mode == "predict"
        self.size = cfg.size or max(round(image_size * cfg.size_ratio), 1)
        scale = (cfg.scale_min, cfg.scale_max)
        self.augment = make_augment(cfg.augment, self.size, scale, augment_cfg)
        self.parts = str(cfg.transform).split("+")
        f = head_features or num_features
        d = f if cfg.mode == "predict" else 2 * f
        hidden = cfg.head_hidden or 4 * f
        self.projector = None
        if cfg.mode == "care":
            self.chunks = int(cfg.chunks)
            self.pair_per = str(cfg.pair_per)
            self.uniformity = float(cfg.uniformity)
            self.uniformity_form = str(cfg.uniformity_form)
            self.uniformity_temperature = float(cfg.uniformity_temperature)
            self.heads = nn.ModuleList()
            if own_projector:
                hidden = cfg.head_hidden or 4 * num_features
                self.projector = projector(num_features, hidden, 4 * num_features)
            self.transformation = (
                None
                if cfg.transform == AUGMENT
                else get_transformation(cfg.transform, self.size, channels)
            )
            return
        if cfg.mode == "regress":
            # AugSelf's heads: one BN MLP per parameter group, 2f-f-f-4 (1024-512-512-4 for a
            # ResNet-18), reading the features of both views side by side.
            self.transformation = None
            self.jitter = tuple(float(v) for v in augment_cfg.jitter)
            width = cfg.head_hidden or f
            self.heads = nn.ModuleList(mlp(d, width, PARAMS_PER_PART, layers=3) for _ in self.parts)
            return
        t = get_transformation(cfg.transform, self.size, channels)
        if cfg.mode == "relative" and t.relative is None:
            raise ConfigError(
                f"mode=relative needs a group (an element relating two copies): "
                f"'{cfg.transform}' is not one; use rotation, hflip, vflip, jigsaw, invert or rotflip"
            )
        self.transformation = t
        if cfg.mode == "relative":  # moves with the module: no copy to the device per step
            self.register_buffer("relative_table", t.relative.clone(), persistent=False)
        self.separate = cfg.heads == "separate" and len(t.factors) > 1
        sizes = [f.num_labels for f in t.factors] if self.separate else [t.num_labels]
        relu, neck = bool(cfg.head_second_relu), int(cfg.head_bottleneck)
        if cfg.head_form == "mlp":
            self.heads = nn.ModuleList(plain_head(d, hidden, k) for k in sizes)
        else:
            self.heads = nn.ModuleList(transformation_head(d, hidden, k, relu, neck) for k in sizes)

    # -- views -------------------------------------------------------------------------------
    def views(self, images: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The term's views (float in [0, 1]) and their targets, from a uint8 batch.

        predict: N views (one sampled element each) or K*N (every element, blocks in label
        order); relative: 2N (two transformed copies of one base view), targets the relating
        element; regress: 2N (two augmented views), targets their parameter difference; care:
        2N (two copies, one pair of elements per chunk), targets the (2, N) element labels
        (empty for `augment`, whose pair is a whole augmentation per chunk).
        """
        if self.mode == "care":
            return self._care_views(images, generator)
        if self.mode == "regress":
            (v1, p1), (v2, p2) = (
                self.augment(images, generator, return_params=True) for _ in range(2)
            )
            targets = parameter_difference(p1, p2, self.parts, images.shape[-1], self.jitter)
            return torch.cat([v1, v2]), targets
        t = self.transformation
        x = self.augment(images, generator)
        if self.expand:
            return t.expand(x)
        if self.mode == "predict":
            labels = t.sample(x.shape[0], generator, x.device)
            return t.apply_drawn(x, labels, generator), labels
        a = t.sample(x.shape[0], generator, x.device)
        b = t.sample(x.shape[0], generator, x.device)
        pair = [t.apply_drawn(x, a, generator), t.apply_drawn(x, b, generator)]
        return torch.cat(pair), self.relative_table[a, b]

    def _care_views(self, images: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        t = self.transformation
        draws = 1 if self.pair_per == "batch" else self.chunks  # blocks sharing one pair
        if t is None:
            views = [self.augment(images, generator, chunks=draws) for _ in range(2)]
            return torch.cat(views), images.new_zeros(0, dtype=torch.long)
        x = self.augment(images, generator)
        n = x.shape[0]
        ids = chunk_ids(n, draws, x.device)
        a, b = (t.sample(chunk_count(n, draws), generator, x.device)[ids] for _ in range(2))
        pair = [t.apply_drawn(x, a, generator), t.apply_drawn(x, b, generator)]
        return torch.cat(pair), torch.stack([a, b])

    # -- loss --------------------------------------------------------------------------------
    def head_input(self, h: Tensor) -> Tensor:
        if self.mode == "predict":
            return h
        n = h.shape[0] // 2
        pair = torch.cat([h[:n], h[n:]], 1)
        if self.mode == "regress":  # both view orders, as AugSelf's symmetric objective
            return torch.cat([pair, torch.cat([h[n:], h[:n]], 1)])
        return pair

    def logits(self, h: Tensor) -> list[Tensor]:
        x = self.head_input(h)
        return [head(x) for head in self.heads]

    def loss(
        self, h: Tensor, targets: Tensor, embed: nn.Module | None = None
    ) -> tuple[Tensor, Metrics]:
        """The term's unweighted loss and metrics from backbone features of its views; a `care`
        term embeds them with its own projector or else with `embed` (the invariance branch's)."""
        if self.mode == "care":
            return self._care_loss(h, embed)
        outputs = self.logits(h)
        if self.mode == "regress":
            # Per parameter group: MSE of tanh(prediction), summed over groups (AugSelf).
            parts = targets.float().split(PARAMS_PER_PART, dim=1)
            mse = sum(
                F.mse_loss(torch.tanh(o.float()), t) for o, t in zip(outputs, parts, strict=True)
            )
            return mse, {f"{self.name}_loss": mse.detach()}
        if not self.separate:
            loss, acc = prediction_loss(outputs[0], targets)
        else:
            labels = self.transformation.split_labels(targets)
            pairs = list(zip(outputs, labels, strict=True))
            loss = torch.stack([F.cross_entropy(o.float(), y) for o, y in pairs]).mean()
            right = torch.stack([o.argmax(1) == y for o, y in pairs]).all(0)
            acc = right.float().mean().detach()
        return loss, {f"{self.name}_loss": loss.detach(), f"{self.name}_acc": acc}

    def _care_loss(self, h: Tensor, embed: nn.Module | None) -> tuple[Tensor, Metrics]:
        z = (self.projector or embed)(h)
        z1, z2 = z.chunk(2)
        loss = care_loss(z1, z2, self.chunks)
        metrics = {f"{self.name}_loss": loss.detach()}
        if self.uniformity:
            # The two copies of an image are never pushed apart: they are each other's positive
            # (infonce, CARE's form) or the term runs within each copy (wang_isola).
            if self.uniformity_form == "infonce":
                spread = infonce_uniformity(z1, z2, self.uniformity_temperature)
            else:
                spread = (uniformity_loss(z1) + uniformity_loss(z2)) / 2
            loss = loss + self.uniformity * spread
            metrics[f"{self.name}_uniformity"] = spread.detach()
        return loss, metrics

    @torch.no_grad()
    def predict(self, h: Tensor) -> Tensor:
        """Predicted joint labels of `predict`-mode views from their features."""
        outputs = [o.argmax(1) for o in self.logits(h)]
        if not self.separate:
            return outputs[0]
        label = torch.zeros_like(outputs[0])
        for factor, out in zip(self.transformation.factors, outputs, strict=True):
            label = label * factor.num_labels + out
        return label
