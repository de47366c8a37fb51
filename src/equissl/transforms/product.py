"""Joint transformations: "a+b" applies a, then b, to each image.

The joint label is mixed radix, la * Kb + lb (the last factor fastest), so `split_labels`
recovers the factors' labels. Where every factor has a relative table, the product's table is
computed from what the joint elements do to a probe image (see `relative.probe_signatures`):
it is the product of the factors' tables when they commute (rotation+invert) and the correct
group table when they do not (rotation+jigsaw). A product of pixel permutations is itself
one, and is then applied by a single gather.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from equissl.transforms.base import Transformation, split_mixed_radix
from equissl.transforms.pixel_permutations import from_table
from equissl.transforms.relative import generating_labels, probe_signatures, relative_table


def _factor_generators(factors: tuple[Transformation, ...]) -> list[int]:
    """Joint labels of generators of each factor (the other factors at the identity): the
    factors' elements lie in the product, so together they generate the group it spans."""
    labels = []
    for i, factor in enumerate(factors):
        stride = math.prod(f.num_labels for f in factors[i + 1 :])
        labels += [g * stride for g in generating_labels(factor.relative)]
    return labels


def product(factors: Sequence[Transformation], size: int) -> Transformation:
    """The joint transformation of `factors` (products among them are flattened) on square
    images of side `size`, applied in the order given."""
    flat = tuple(g for f in factors for g in (f.factors or (f,)))
    name = "+".join(f.name for f in flat)
    radices = [f.num_labels for f in flat]
    num_labels = math.prod(radices)

    def apply(images: Tensor, labels: Tensor) -> Tensor:
        for factor, label in zip(flat, split_mixed_radix(labels, radices), strict=True):
            images = factor.apply(images, label)
        return images

    def apply_drawn(images: Tensor, labels: Tensor, generator: torch.Generator) -> Tensor:
        for factor, label in zip(flat, split_mixed_radix(labels, radices), strict=True):
            images = factor.apply_drawn(images, label, generator)
        return images

    drawn = apply_drawn if any(f.drawn is not None for f in flat) else None
    relative = None
    if all(f.relative is not None for f in flat):
        signatures = probe_signatures(apply, num_labels, size)
        if signatures is not None:
            tables, inverted = signatures
            relative = relative_table(tables, inverted, _factor_generators(flat))
            if relative is not None and not inverted.any():
                apply = from_table(name, tables, size, relative).apply
    return Transformation(name, num_labels, apply, relative, flat, drawn)
