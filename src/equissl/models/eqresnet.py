"""EqResNet-18/34: ResNets built from exact C4 or D4 group convolutions (Wang et al.'s
EqResNet18 is the C4 one).

`width` is the plain ResNet width whose parameter count the network matches: the first stage
has width / sqrt(|G|) fields of |G| channels (32 fields for C4 at width 64, 23 for D4), unless
`fields` sets it. Two outputs:

- `forward(x)`: the invariant representation (batch, 8 * fields), features averaged over space
  and over the group; rotating (and for D4 mirroring) the input leaves it unchanged. Every SSL
  method and every evaluation reads it.
- `orientation_features(x)`: (batch, 8 * fields, |G|), averaged over space only; a group
  element permutes the last axis. Transformation heads read it flattened, so rotation
  prediction can see the orientation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from equissl.models.gconv import GroupBatchNorm, GroupConv2d, symmetric_max_pool
from equissl.models.groups import Group, get_group

EQ_LAYOUTS: dict[str, tuple[int, int, int, int]] = {
    "eqresnet18": (2, 2, 2, 2),
    "eqresnet34": (3, 4, 6, 3),
}


class EqBasicBlock(nn.Module):
    def __init__(self, group: Group, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = GroupConv2d(group, cin, planes, 3, stride=stride, padding=1)
        self.bn1 = GroupBatchNorm(group, planes)
        self.conv2 = GroupConv2d(group, planes, planes, 3, padding=1)
        self.bn2 = GroupBatchNorm(group, planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(
                GroupConv2d(group, cin, planes, 1, stride=stride), GroupBatchNorm(group, planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class EqResNet(nn.Module):
    """A group-equivariant ResNet trunk: lifting stem, four stages, pooling; no classifier."""

    def __init__(
        self,
        name: str = "eqresnet18",
        *,
        group: str = "c4",
        stem: str = "cifar",
        width: int = 64,
        fields: int = 0,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.group = get_group(group)
        self.group_order = self.group.order
        base = fields or max(1, round(width / math.sqrt(self.group.order)))
        g = self.group
        if stem == "cifar":
            self.stem = nn.Sequential(
                GroupConv2d(g, in_channels, base, 3, padding=1, lifting=True),
                GroupBatchNorm(g, base),
                nn.ReLU(inplace=True),
            )
        else:
            self.stem = nn.Sequential(
                GroupConv2d(g, in_channels, base, 7, stride=2, padding=3, lifting=True),
                GroupBatchNorm(g, base),
                nn.ReLU(inplace=True),
            )
        self.max_pool = stem != "cifar"
        stages, cin = [], base
        for i, depth in enumerate(EQ_LAYOUTS[name]):
            planes = base * 2**i
            blocks = [
                EqBasicBlock(g, cin if j == 0 else planes, planes, 2 if i > 0 and j == 0 else 1)
                for j in range(depth)
            ]
            cin = planes
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.num_features = cin

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's (batch, fields * |G|, h, w) group feature maps."""
        x = self.stem(x)
        if self.max_pool:
            x = symmetric_max_pool(x)
        return self.stages(x)

    def orientation_features(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, features, |G|): pooled over space, not over the group."""
        maps = self.feature_maps(x)
        return maps.mean((-2, -1)).view(x.shape[0], self.num_features, self.group_order)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.orientation_features(x).mean(-1)
