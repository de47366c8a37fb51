"""Pixel permutations (rotation, flips, the dihedral group D4, 2x2 jigsaw) as index tables.

Each transformation is a (K, H*W) gather table built once per size by applying the exact
reference operation (torch.rot90, torch.flip, quadrant slicing) to an image of pixel indices;
`apply` is then one `torch.gather` with each sample's row, exact and free of host syncs.
Convention: out.flatten()[p] = x.flatten()[table[label, p]], the same for every channel.
"""

from __future__ import annotations

from itertools import permutations

import torch
from torch import Tensor

from equissl.transforms.base import DeviceCache, Transformation, check_square
from equissl.transforms.relative import relative_table

JIGSAW_PERMUTATIONS: tuple[tuple[int, ...], ...] = tuple(permutations(range(4)))


def from_table(
    name: str, table: Tensor, size: int, relative: Tensor | None = None
) -> Transformation:
    """The transformation gathering pixels by `table` (K, size*size); its relative table is
    computed numerically from the table unless given."""
    cache = DeviceCache(table.long())
    hw = size * size

    def apply(images: Tensor, labels: Tensor) -> Tensor:
        check_square(images, size, name)
        n, c = images.shape[:2]
        index = cache.on(images.device)[labels].unsqueeze(1).expand(n, c, hw)
        return images.reshape(n, c, hw).gather(2, index).view(images.shape)

    if relative is None:
        relative = relative_table(table)
    return Transformation(name, table.shape[0], apply, relative)


def _index_image(size: int) -> Tensor:
    return torch.arange(size * size).view(size, size)


def _tables(outputs: list[Tensor]) -> Tensor:
    return torch.stack([o.reshape(-1) for o in outputs])


def rotation(size: int) -> Transformation:
    """C4: label k turns the image k x 90 degrees counter-clockwise (torch.rot90(x, k, (2, 3)))."""
    idx = _index_image(size)
    return from_table("rotation", _tables([torch.rot90(idx, k) for k in range(4)]), size)


def hflip(size: int) -> Transformation:
    """Z2: label 1 mirrors left-right (flips the width axis)."""
    idx = _index_image(size)
    return from_table("hflip", _tables([idx, idx.flip(1)]), size)


def vflip(size: int) -> Transformation:
    """Z2: label 1 mirrors top-bottom (flips the height axis)."""
    idx = _index_image(size)
    return from_table("vflip", _tables([idx, idx.flip(0)]), size)


def rotflip(size: int) -> Transformation:
    """D4: label 4 f + k turns by k x 90 degrees counter-clockwise (torch.rot90), then flips
    the width axis when f = 1; labels 0-3 are the rotations, 4-7 the reflections."""
    idx = _index_image(size)
    outputs = [torch.rot90(idx, k) for k in range(4)]
    return from_table("rotflip", _tables(outputs + [o.flip(1) for o in outputs]), size)


def quadrants(size: int) -> list[tuple[slice, slice]]:
    """(rows, cols) of the 2x2 jigsaw quadrants: 0 top-left, 1 top-right, 2 bottom-left,
    3 bottom-right, each (size // 2) square. At odd sizes the middle row and column belong
    to no quadrant and stay in place."""
    h = size // 2
    low, high = slice(0, h), slice(size - h, size)
    return [(low, low), (low, high), (high, low), (high, high)]


def jigsaw(size: int) -> Transformation:
    """S4 on the 2x2 grid of quadrants: label l is `JIGSAW_PERMUTATIONS[l]` (the order of
    itertools.permutations(range(4)), label 0 the identity) and output quadrant i shows input
    quadrant perm[i]."""
    idx = _index_image(size)
    boxes = quadrants(size)
    outputs = []
    for perm in JIGSAW_PERMUTATIONS:
        out = idx.clone()
        for i, j in enumerate(perm):
            out[boxes[i]] = idx[boxes[j]]
        outputs.append(out)
    return from_table("jigsaw", _tables(outputs), size)
