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

Wang et al.'s variant (their `Equivariant Network` code) is three options: `downsample="max"`
(stride 2 as a stride-1 convolution and 2x2 max pooling), `dropout=0.2` (after the first
convolution of every block) and `pool="group_max"`: the last maps are max-pooled over the
group and not over space, so both outputs are those (batch, fields * h * w) features (4,096 for
32 fields at 32x32), not invariant (a rotation moves them in space); `group_order` is then 1.
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


POOLS = ("mean", "group_max")


class EqBasicBlock(nn.Module):
    def __init__(
        self,
        group: Group,
        cin: int,
        planes: int,
        stride: int,
        downsample: str = "avg",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv1 = GroupConv2d(
            group, cin, planes, 3, stride=stride, padding=1, downsample=downsample
        )
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.bn1 = GroupBatchNorm(group, planes)
        self.conv2 = GroupConv2d(group, planes, planes, 3, padding=1)
        self.bn2 = GroupBatchNorm(group, planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(
                GroupConv2d(group, cin, planes, 1, stride=stride, downsample=downsample),
                GroupBatchNorm(group, planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.dropout(self.conv1(x))))
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
        fields: int | None = None,
        in_channels: int = 3,
        downsample: str = "avg",
        dropout: float = 0.0,
        pool: str = "mean",
        image_size: int = 32,
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
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
                EqBasicBlock(
                    g,
                    cin if j == 0 else planes,
                    planes,
                    2 if i > 0 and j == 0 else 1,
                    downsample,
                    dropout,
                )
                for j in range(depth)
            ]
            cin = planes
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.num_features = cin
        self.group_max = pool == "group_max"
        if self.group_max:  # features are fields x the last map's pixels; no group axis left
            side = self._last_side(image_size, stem, downsample)
            self.num_features, self.group_order = cin * side * side, 1

    @staticmethod
    def _last_side(size: int, stem: str, downsample: str) -> int:
        """Side of the last stage's maps for `size` x `size` inputs."""
        halve = (lambda s: s // 2) if downsample == "max" else (lambda s: (s + 1) // 2)
        if stem != "cifar":
            size = (size + 1) // 2  # the 7x7 stride-2 stem
            size = (size + 1) // 2  # the symmetric max-pool
        for _ in range(3):
            size = halve(size)
        return size

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's (batch, fields * |G|, h, w) group feature maps."""
        x = self.stem(x)
        if self.max_pool:
            x = symmetric_max_pool(x)
        return self.stages(x)

    def orientation_features(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, features, |G|): pooled over space, not over the group (`group_max`: the
        (batch, fields * h * w, 1) group-max-pooled maps)."""
        maps = self.feature_maps(x)
        if self.group_max:
            b, c, h, w = maps.shape
            g = self.group.order
            return maps.view(b, c // g, g, h, w).amax(2).reshape(b, -1, 1)
        return maps.mean((-2, -1)).view(x.shape[0], self.num_features, self.group_order)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.orientation_features(x).mean(-1)
