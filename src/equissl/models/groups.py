"""The point groups of the square grid that group convolutions use: C4 (rotations by 90
degrees, p4) and D4 (rotations and mirrors, p4m).

An element g = (r, m) acts on the last two (spatial) dimensions of a tensor as
`rot90(flip(x) if m else x, r)`: exact permutations of the pixel grid, so every identity of
the group holds to the bit. Elements are indexed 0..|G|-1 with the identity first; the Cayley
table and inverses are computed by acting on a probe pattern, not written by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import torch

GROUP_NAMES = ("c4", "d4")


def act(x: torch.Tensor, element: tuple[int, int]) -> torch.Tensor:
    """The spatial action of (r, m) on the last two dimensions: mirror (width axis), then
    rotate by r quarter turns counter-clockwise."""
    r, m = element
    if m:
        x = x.flip(-1)
    return torch.rot90(x, r, dims=(-2, -1)) if r % 4 else x


@dataclass(frozen=True)
class Group:
    """A finite group of grid symmetries with its multiplication table."""

    name: str
    elements: tuple[tuple[int, int], ...]
    table: torch.Tensor = field(repr=False)  # table[a, b] = index of a*b (apply b, then a)
    inverse: torch.Tensor = field(repr=False)  # inverse[a] = index of a^-1

    @property
    def order(self) -> int:
        return len(self.elements)

    def act(self, x: torch.Tensor, g: int) -> torch.Tensor:
        return act(x, self.elements[g])

    def transform_fields(self, x: torch.Tensor, g: int) -> torch.Tensor:
        """g acting on group feature maps (batch, fields * |G|, H, W), orientation fastest:
        (g.f)[c, s] = T_g f[c, g^-1 s]; on (batch, fields, |G|) orientation features (no
        spatial axes, pass a 3-D tensor) only the orientation axis is permuted."""
        source = self.table[self.inverse[g]]  # s -> g^-1 s
        if x.dim() == 3:
            return x[:, :, source]
        b, channels, h, w = x.shape
        fields = x.reshape(b, channels // self.order, self.order, h, w)[:, :, source]
        moved = self.act(fields, g)
        return moved.reshape(b, channels, *moved.shape[-2:])


def _make_group(name: str, elements: tuple[tuple[int, int], ...]) -> Group:
    probe = torch.arange(9.0).reshape(3, 3)  # no symmetry: each element gives a distinct image
    images = torch.stack([act(probe, e) for e in elements])
    n = len(elements)
    table = torch.empty(n, n, dtype=torch.long)
    for a in range(n):
        for b in range(n):
            composed = act(images[b], elements[a])
            table[a, b] = int(((images - composed).abs().sum((1, 2)) == 0).nonzero()[0, 0])
    inverse = (table == 0).long().argmax(1)
    return Group(name, elements, table, inverse)


@cache
def get_group(name: str) -> Group:
    """C4 or D4 by name."""
    if name == "c4":
        return _make_group(name, tuple((r, 0) for r in range(4)))
    if name == "d4":
        return _make_group(name, tuple((r, m) for m in range(2) for r in range(4)))
    raise ValueError(f"unknown group {name!r}; choose one of {', '.join(GROUP_NAMES)}")
