"""Backbones by name: ResNet-18/34/50 and the C4/D4-equivariant EqResNet-18/34."""

from __future__ import annotations

import torch
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


class ModuleBackbone(nn.Module):
    """Any module mapping normalised images (N, C, H, W) to features (N, ...) as a backbone of
    the library: `forward` flattens its output to (N, num_features), `orientation_features`
    adds the group axis of size 1 (`group_order` = 1), as a plain ResNet's."""

    group_order = 1

    def __init__(self, module: nn.Module, num_features: int) -> None:
        super().__init__()
        self.module, self.num_features = module, num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x).flatten(1)

    def orientation_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).unsqueeze(-1)


def as_backbone(
    module: nn.Module, *, in_channels: int = 3, image_size: int = 32, num_features: int = 0
) -> nn.Module:
    """`module` as a backbone: returned as it is when it has the interface already
    (`num_features`, `orientation_features`, `group_order`), else wrapped in `ModuleBackbone`,
    its feature count `num_features` or, when 0, measured on one zero image of `in_channels` x
    `image_size`^2 (in eval mode, without gradients; the module's modes are restored)."""
    if all(hasattr(module, a) for a in ("num_features", "orientation_features", "group_order")):
        return module
    if num_features <= 0:
        modes = [m.training for m in module.modules()]
        module.eval()
        try:
            with torch.no_grad():
                param = next(module.parameters(), None)
                x = torch.zeros(1, in_channels, image_size, image_size)
                if param is not None:
                    x = x.to(param.device)
                num_features = module(x).flatten(1).shape[1]
        finally:
            for m, mode in zip(module.modules(), modes, strict=True):
                m.training = mode
    return ModuleBackbone(module, num_features)
