"""The one place the methods package reads the configuration: it builds the backbone, the
invariance branch, the invariance views and the terms with plain arguments, in the order the
random initialisation has always drawn them, and composes them into a `Method`."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from omegaconf import DictConfig
from torch import nn

from equissl.augment import Augment, build_augment
from equissl.errors import ConfigError
from equissl.methods.classifier import OnlineClassifier
from equissl.methods.invariance import (
    BYOL,
    BarlowTwins,
    Invariance,
    MoCo,
    SimCLR,
    SimSiam,
    VICReg,
)
from equissl.methods.method import Method
from equissl.methods.terms import Care, LabelHeads, Predict, Regress, Relative, Term
from equissl.methods.terms.parameters import PARAMS_PER_PART
from equissl.methods.views import InvarianceViews
from equissl.models import build_backbone, mlp, plain_head, projector, transformation_head
from equissl.objectives import infonce_uniformity, paired_uniformity
from equissl.transforms import get_transformation

AUGMENT = "augment"  # mode care: the base augmentation itself is the transformation


def make_augment(
    name: str, size: int, scale: tuple[float, float], cfg: DictConfig, view: int | None = None
) -> Augment:
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


def _projector(
    m: DictConfig, d: int, hidden: int = 0, out: int = 0, norm: str = "both"
) -> nn.Sequential:
    """The configured projector: the method's recipe (`hidden`, `out`, default 4d; `norm`) unless
    the config sets its sizes, layers (E-SSL's ImageNet ones: 3) or BatchNorm placement."""
    hidden, out = m.proj_hidden or hidden or 4 * d, m.proj_dim or out or 4 * d
    norm = norm if m.proj_norm == "auto" else m.proj_norm
    return projector(d, hidden, out, norm, m.proj_layers or 2, bool(m.proj_last_affine))


def build_invariance(m: DictConfig, d: int, backbone: nn.Module) -> Invariance | None:
    """The branch named by `method.invariance` on `d` backbone features (head sizes: each
    method's CIFAR recipe at d = 512, scaled with d), or None for `none` (a pure pretext task)."""
    if m.invariance == "simclr":
        return SimCLR(_projector(m, d), float(m.temperature), m.negatives == "other_view")
    if m.invariance == "moco":
        head = _projector(m, d, hidden=d, out=128, norm="none")
        return MoCo(
            head,
            backbone,
            queue_size=int(m.moco_queue),
            dim=m.proj_dim or 128,
            temperature=float(m.temperature),
            momentum=float(m.moco_momentum),
        )
    if m.invariance == "simsiam":
        out = m.proj_dim or 4 * d
        head = _projector(m, d)
        return SimSiam(head, mlp(out, m.pred_hidden or d, out, layers=2))
    if m.invariance == "byol":
        out, hidden = m.proj_dim or max(d // 2, 1), m.proj_hidden or 8 * d
        head = mlp(d, hidden, out, layers=m.proj_layers or 2)
        predictor = mlp(out, m.pred_hidden or hidden, out, layers=2)
        separate = m.view_passes == "separate"
        return BYOL(head, predictor, backbone, base_momentum=float(m.ema), separate_views=separate)
    if m.invariance in ("barlow_twins", "vicreg"):
        head = mlp(d, m.proj_hidden or 4 * d, m.proj_dim or 4 * d, m.proj_layers or 3)
        if m.invariance == "vicreg":
            return VICReg(head, tuple(float(w) for w in m.vicreg_weights))
        return BarlowTwins(head, float(m.barlow_lambda), float(m.barlow_scale))
    return None


def term_names(terms: list[DictConfig]) -> list[str]:
    """Metric names of the active equivariance terms: the transformation, with the mode when it
    is not `predict`, and an index where two terms would share a name."""
    names = []
    for i, t in enumerate(terms):
        name = str(t.transform) + ("" if t.mode == "predict" else f"_{t.mode}")
        names.append(name if name not in names else f"{name}{i}")
    return names


def spread(t: DictConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A `care` term's non-collapse term: CARE's InfoNCE form (each copy the other's positive)
    or Wang & Isola's uniformity within each copy (`wang_isola`)."""
    if t.uniformity_form == "infonce":
        return functools.partial(infonce_uniformity, temperature=float(t.uniformity_temperature))
    return paired_uniformity


def build_term(
    t: DictConfig,
    name: str,
    augment_cfg: DictConfig,
    *,
    image_size: int,
    channels: int,
    num_features: int,
    head_features: int,
    views: InvarianceViews | None,
    shared_projector: nn.Module | None,
) -> Term:
    """The term of config `t`: `num_features` is the representation (what `care` embeds),
    `head_features` what the other modes' heads read (an EqResNet's orientation features, |G|
    times wider). A `regress` term reuses the invariance `views` when there are some; a `care`
    term embeds with `shared_projector` (the invariance branch's) or, without one, its own."""
    weight = float(t.weight)
    size = t.size or max(round(image_size * t.size_ratio), 1)
    f = head_features
    d = f if t.mode == "predict" else 2 * f
    parts = str(t.transform).split("+")
    if t.mode == "regress":
        # AugSelf's heads: one BN MLP per parameter group, 2f-f-f-4 (1024-512-512-4 for a
        # ResNet-18), reading the features of both views side by side.
        heads = nn.ModuleList(mlp(d, t.head_hidden or f, PARAMS_PER_PART, 3) for _ in parts)
        if views is not None:  # AugSelf on the invariance views
            return Regress(name, weight, heads=heads, parts=parts, shared=views)
    augment = make_augment(t.augment, size, (t.scale_min, t.scale_max), augment_cfg)
    if t.mode == "regress":
        return Regress(name, weight, heads=heads, parts=parts, augment=augment)
    if t.mode == "care":
        own = shared_projector is None
        if own:
            hidden = t.head_hidden or 4 * num_features
            shared_projector = projector(num_features, hidden, 4 * num_features)
        group = None if t.transform == AUGMENT else get_transformation(t.transform, size, channels)
        return Care(
            name,
            weight,
            augment=augment,
            transformation=group,
            projector=shared_projector,
            shared=not own,
            chunks=int(t.chunks),
            draws=1 if t.pair_per == "batch" else int(t.chunks),
            uniformity=float(t.uniformity),
            spread=spread(t),
        )
    group = get_transformation(t.transform, size, channels)
    if t.mode == "relative" and group.relative is None:
        raise ConfigError(
            f"mode=relative needs a group (an element relating two copies): "
            f"'{t.transform}' is not one; use rotation, hflip, vflip, jigsaw, invert or rotflip"
        )
    separate = t.heads == "separate" and len(group.factors) > 1
    sizes = [g.num_labels for g in group.factors] if separate else [group.num_labels]
    hidden = t.head_hidden or 4 * f
    if t.head_form == "mlp":
        heads = [plain_head(d, hidden, k) for k in sizes]
    else:
        relu, neck = bool(t.head_second_relu), t.head_bottleneck
        heads = [transformation_head(d, hidden, k, relu, neck) for k in sizes]
    heads = LabelHeads(heads, group, separate)
    if t.mode == "relative":
        return Relative(name, weight, augment=augment, transformation=group, heads=heads)
    expand = bool(t.expand)
    return Predict(name, weight, augment=augment, transformation=group, heads=heads, expand=expand)


def backbone_of(b: DictConfig, *, in_channels: int, image_size: int) -> nn.Module:
    """The backbone of the configuration's `backbone` section, freshly initialised."""
    return build_backbone(
        b.name,
        stem=b.stem,
        width=b.width,
        in_channels=in_channels,
        group=b.group,
        fields=b.fields,
        downsample=b.downsample,
        dropout=b.dropout,
        pool=b.pool,
        image_size=image_size,
        zero_init_residual=b.zero_init_residual,
    )


def build_method(
    cfg: DictConfig,
    *,
    in_channels: int,
    image_size: int,
    num_classes: int,
    mean: torch.Tensor,
    std: torch.Tensor,
) -> Method:
    """The configured method for images of `in_channels` x `image_size`^2, `num_classes`
    classes (the online classifier) and normalisation statistics `mean`, `std`."""
    m, b, a = cfg.method, cfg.backbone, cfg.augment
    backbone = backbone_of(b, in_channels=in_channels, image_size=image_size)
    if b.frozen:
        backbone.requires_grad_(False)
    d = backbone.num_features
    invariance = build_invariance(m, d, backbone)
    view_size = a.size or image_size
    active = [t for t in m.equivariance if t.role == "equivariance"]
    views = None
    if invariance is not None:
        # One pipeline per invariance view: they differ only in their blur and solarisation
        # probabilities (E-SSL's ImageNet views: blur 1.0 / 0.1, solarise 0 / 0.2).
        scale = (a.scale_min, a.scale_max)
        views = InvarianceViews(
            [make_augment(a.pipeline, view_size, scale, a, view) for view in (0, 1)],
            [
                get_transformation(t.transform, view_size, in_channels)
                for t in m.equivariance
                if t.role == "augment"
            ],
            keep_params=any(t.mode == "regress" for t in active),
        )
    shared_projector = getattr(invariance, "projector", None)
    terms = [
        build_term(
            t,
            name,
            a,
            image_size=image_size,
            channels=in_channels,
            num_features=d,
            head_features=d * backbone.group_order,
            views=views,
            shared_projector=shared_projector,
        )
        for t, name in zip(active, term_names(active), strict=True)
    ]
    classifier = OnlineClassifier(
        d, num_classes, m.classifier, float(m.class_weight), m.classifier_grad == "signed"
    )
    return Method(
        backbone,
        invariance,
        views,
        terms,
        classifier,
        mean=mean,
        std=std,
        separate_views=m.view_passes == "separate",
    )
