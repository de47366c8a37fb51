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
) -> nn.Module:
    """A backbone whose `forward` gives the (batch, features) representation (invariant to the
    group for an EqResNet) and whose `orientation_features` gives (batch, features, |G|), |G| = 1
    for a plain ResNet. `group` and `fields` (0: width / sqrt|G|) apply to EqResNets only."""
    if name in LAYOUTS:
        return ResNet(name, stem=stem, width=width, in_channels=in_channels)
    if name not in EQ_LAYOUTS:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    if group not in GROUP_NAMES:
        raise ValueError(f"unknown group {group!r}; choose one of {', '.join(GROUP_NAMES)}")
    return EqResNet(
        name, group=group, stem=stem, width=width, fields=fields, in_channels=in_channels
    )
