"""Backbones by name: ResNet-18/34/50 and the C4/D4-equivariant EqResNet-18/34."""

from __future__ import annotations

from torch import nn

from equissl.models.eqresnet import EQ_LAYOUTS, EqResNet
from equissl.models.groups import GROUP_NAMES
from equissl.models.resnet import LAYOUTS, ResNet

BACKBONES = (*LAYOUTS, *EQ_LAYOUTS)


def build_backbone(
    name: str = "resnet18",
    *,
    stem: str = "cifar",
    width: int = 64,
    in_channels: int = 3,
    group: str = "c4",
    fields: int = 0,
    downsample: str = "avg",
    dropout: float = 0.0,
    pool: str = "mean",
    image_size: int = 32,
    zero_init_residual: bool = False,
) -> nn.Module:
    """A backbone whose `forward` gives the (batch, features) representation (invariant to the
        group for an EqResNet with `pool="mean"`) and whose `orientation_features` gives (batch,
        features, |G|), |G| = 1 for a plain ResNet. `group`, `fields` (0: width / sqrt|G|),
        `downsample`, `dropout`, `pool` and `image_size` (what `group_max` features are sized for)
        apply to EqResNets only (see equissl.models.eqresnet); `zero_init_residual` (the last BatchNorm
    of each residual block starts at 0) to plain ResNets only."""
    if name in LAYOUTS:
        return ResNet(
            name,
            stem=stem,
            width=width,
            in_channels=in_channels,
            zero_init_residual=zero_init_residual,
        )
    if name not in EQ_LAYOUTS:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    if group not in GROUP_NAMES:
        raise ValueError(f"unknown group {group!r}; choose one of {', '.join(GROUP_NAMES)}")
    return EqResNet(
        name,
        group=group,
        stem=stem,
        width=width,
        fields=fields,
        in_channels=in_channels,
        downsample=downsample,
        dropout=dropout,
        pool=pool,
        image_size=image_size,
    )
