"""The invariance views of a step: two augmented views per image, then the transformations
applied at random to them (terms with role `invariance`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from equissl.augment import Augment
from equissl.transforms import Transformation


class InvarianceViews:
    """Draws the 2N invariance views of a uint8 batch, one pipeline of `augments` per view (they
    may differ in blur and solarisation: E-SSL's ImageNet views), then applies an element of
    each of `transforms` drawn per view. With `keep_params` it keeps the two draws' parameters
    in `params` until the next call (AugSelf's `Regress` term regresses them)."""

    def __init__(
        self,
        augments: Sequence[Augment],
        transforms: Sequence[Transformation] = (),
        keep_params: bool = False,
    ) -> None:
        self.augments, self.transforms = list(augments), list(transforms)
        self.keep_params = keep_params
        self.params: list[dict[str, Tensor]] = []

    @property
    def jitter(self) -> tuple[float, ...]:
        """The colour-jitter strengths of the first view's pipeline."""
        return self.augments[0].jitter

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        draws = [a(images, generator, return_params=self.keep_params) for a in self.augments]
        if self.keep_params:
            self.params = [p for _, p in draws]
            draws = [v for v, _ in draws]
        views = torch.cat(draws)
        for t in self.transforms:
            labels = t.sample(views.shape[0], generator, views.device)
            views = t.apply_drawn(views, labels, generator)
        return views
