"""Heads on top of the backbone: projectors, predictors and the transformation predictor."""

from __future__ import annotations

from torch import nn


def projector(
    in_dim: int,
    hidden: int,
    out_dim: int,
    norm: str = "both",
    layers: int = 2,
    last_affine: bool = False,
) -> nn.Sequential:
    """(Linear-[BN]-ReLU) x (layers - 1), then a last Linear; `norm` says where BatchNorm sits.

    both: BN after every layer and no biases before it, the last BN affine only with
    `last_affine` (E-SSL's projectors: CIFAR 512-2048-2048; ImageNet, layers=3, 2048-2048-2048-128
    with an affine last BN for SimCLR, 2048-2048-2048-2048 with a plain one for SimSiam);
    hidden: BN on the hidden layers, a last Linear with bias (SimCLR's and CARE's CIFAR head);
    none: Linear-ReLU-Linear with biases (MoCo-v2's, and CARE's ImageNet-100 head).
    """
    if layers < 1:
        raise ValueError(f"projector needs layers >= 1, got {layers}")
    modules: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers - 1):
        modules.append(nn.Linear(dim, hidden, bias=norm == "none"))
        if norm != "none":
            modules.append(nn.BatchNorm1d(hidden))
        modules.append(nn.ReLU(inplace=True))
        dim = hidden
    modules.append(nn.Linear(dim, out_dim, bias=norm != "both"))
    if norm == "both":
        modules.append(nn.BatchNorm1d(out_dim, affine=last_affine))
    return nn.Sequential(*modules)


def transformation_head(
    in_dim: int,
    hidden: int,
    num_labels: int,
    second_relu: bool = True,
    bottleneck: int | None = None,
) -> nn.Sequential:
    """E-SSL's predictor: in-hidden-hidden-labels with LayerNorm and ReLU (512-2048-2048-4 at
    full width). `second_relu=False` is its E-SimSiam head, Linear-LN-ReLU-Linear-LN-Linear;
    `bottleneck=b` adds Linear(hidden, b)-LayerNorm before the output layer (its ImageNet head,
    2048-2048-2048-128-4)."""
    second = [nn.ReLU(inplace=True)] if second_relu else []
    last = hidden
    neck: list[nn.Module] = []
    if bottleneck:
        neck, last = [nn.Linear(hidden, bottleneck), nn.LayerNorm(bottleneck)], bottleneck
    return nn.Sequential(
        nn.Linear(in_dim, hidden),
        nn.LayerNorm(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden),
        nn.LayerNorm(hidden),
        *second,
        *neck,
        nn.Linear(last, num_labels),
    )


def plain_head(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Linear-ReLU-Linear with biases and no normalisation (Wang et al.'s transformation
    head, `CIFAR_Network.projector`: 512-2048-K)."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)
    )


def mlp(
    in_dim: int,
    hidden: int,
    out_dim: int,
    layers: int = 2,
    last_bn: bool = False,
    last_bn_affine: bool = True,
) -> nn.Sequential:
    """(Linear(no bias)-BN-ReLU) x (layers - 1), then Linear, then BatchNorm1d if `last_bn`.

    The last Linear has a bias unless a BN follows it. Recipes it serves (in_dim = 512 for
    ResNet-18, 2048 for ResNet-50):

    - SimSiam CIFAR projector (Chen & He, 2021): layers=3, hidden=2048, out_dim=2048, last_bn.
    - SimSiam predictor: layers=2, hidden=512, out_dim=2048, no last BN (bottleneck).
    - BYOL projector and predictor (Grill et al., 2020): layers=2, hidden=4096, out_dim=256.
    - Barlow Twins (Zbontar et al., 2021) / VICReg (Bardes et al., 2022) projector: layers=3,
      hidden=out_dim=2048 on CIFAR (solo-learn), 8192 on ImageNet.
    """
    if layers < 1:
        raise ValueError(f"mlp needs layers >= 1, got {layers}")
    modules: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers - 1):
        modules += [
            nn.Linear(dim, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
        ]
        dim = hidden
    modules.append(nn.Linear(dim, out_dim, bias=not last_bn))
    if last_bn:
        modules.append(nn.BatchNorm1d(out_dim, affine=last_bn_affine))
    return nn.Sequential(*modules)
