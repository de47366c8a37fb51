"""The `Transformation` record: a finite set of image transformations indexed by labels.

Every transformation is batched: `apply(images, labels)` transforms image i by element
`labels[i]`, on the images' device, without per-sample Python loops or host-device syncs.
Label 0 is always the identity element. A transformation with continuous parameters besides
its label (Wang et al.'s blur: a sigma per image) draws them in `apply_drawn(images, labels,
generator)`, the training path; `apply` is then its deterministic form (documented per
transformation), and every other transformation's `apply_drawn` is its `apply`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass(frozen=True, eq=False)
class Transformation:
    """K labelled transformations of float images (N, C, H, W) in [0, 1].

    `relative[a, b]` is the label r with g_b = g_r o g_a (so view_b = g_r(view_a)); it is a
    (K, K) long tensor on the CPU, or None where the set is not a group (grayscale, blur).
    A product "a+b" has `factors == (a, b)` and label `la * Kb + lb` (mixed radix, the last
    factor fastest); other transformations have no factors. Instances compare by identity
    (`eq=False`: the tensor field has no boolean equality).
    """

    name: str
    num_labels: int
    apply: Callable[[Tensor, Tensor], Tensor] = field(repr=False)
    relative: Tensor | None = field(repr=False)
    factors: tuple[Transformation, ...] = field(default=(), repr=False)
    drawn: Callable[[Tensor, Tensor, torch.Generator], Tensor] | None = field(
        default=None, repr=False
    )

    def apply_drawn(self, images: Tensor, labels: Tensor, generator: torch.Generator) -> Tensor:
        """`apply`, with any per-image continuous parameters drawn from `generator`."""
        if self.drawn is None:
            return self.apply(images, labels)
        return self.drawn(images, labels, generator)

    def sample(
        self, n: int, generator: torch.Generator, device: torch.device | str | None = None
    ) -> Tensor:
        """n uniform labels in [0, K), drawn with `generator` on its device, then moved to
        `device` (default: the generator's device)."""
        labels = torch.randint(self.num_labels, (n,), generator=generator, device=generator.device)
        return labels if device is None else labels.to(device)

    def expand(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Every element applied to every image: (K*N, C, H, W) in blocks k = 0..K-1, and the
        labels (K*N,) = arange(K).repeat_interleave(N)."""
        n = images.shape[0]
        labels = torch.arange(self.num_labels, device=images.device).repeat_interleave(n)
        return self.apply(images.repeat(self.num_labels, 1, 1, 1), labels), labels

    def split_labels(self, labels: Tensor) -> list[Tensor]:
        """The factors' labels of a product's joint labels (inverse of the mixed radix);
        `[labels]` for a transformation without factors."""
        if not self.factors:
            return [labels]
        return split_mixed_radix(labels, [f.num_labels for f in self.factors])


def split_mixed_radix(labels: Tensor, radices: list[int]) -> list[Tensor]:
    """Digits of `labels` in the mixed radix `radices` (most significant first)."""
    digits = []
    for k in reversed(radices):
        digits.append(labels % k)
        labels = labels.div(k, rounding_mode="floor")
    return digits[::-1]


class DeviceCache:
    """A constant tensor copied once per (device, dtype) it is used with: `apply` then costs
    no host-to-device copy per call."""

    def __init__(self, tensor: Tensor) -> None:
        self._source = tensor
        self._copies: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def on(self, device: torch.device, dtype: torch.dtype | None = None) -> Tensor:
        """The tensor on `device`, cast to `dtype` when given."""
        dtype = self._source.dtype if dtype is None else dtype
        key = (torch.device(device), dtype)
        copy = self._copies.get(key)
        if copy is None:
            copy = self._copies[key] = self._source.to(device=device, dtype=dtype)
        return copy


def check_square(images: Tensor, size: int, name: str) -> None:
    """Raise ValueError unless `images` is (N, C, size, size): the tables are per size."""
    if images.dim() != 4 or images.shape[-2:] != (size, size):
        raise ValueError(
            f"{name}: expected images (N, C, {size}, {size}), got {tuple(images.shape)}"
        )
