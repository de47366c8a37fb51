"""Relative: predict the element relating two transformed copies of one view (E-SSL, app. H)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from equissl.augment import Augment
from equissl.methods.terms.labels import LabelHeads
from equissl.transforms import Transformation

Metrics = dict[str, Tensor]


class Relative(nn.Module):
    """Two copies of a view drawn by `augment`, transformed by elements a and b of the group
    `transformation`; `heads` read both copies' features side by side and predict the element r
    with g_b = g_r o g_a. Metrics `<name>_loss` and `<name>_acc`."""

    representation = False  # reads the orientation features (an EqResNet's group axis)

    def __init__(
        self,
        name: str,
        weight: float,
        *,
        augment: Augment,
        transformation: Transformation,
        heads: LabelHeads,
    ) -> None:
        super().__init__()
        if transformation.relative is None:
            raise ValueError(f"Relative needs a group: '{transformation.name}' is not one")
        self.name, self.weight = name, weight
        self.augment, self.transformation, self.heads = augment, transformation, heads
        # moves with the module: no copy to the device per step
        self.register_buffer("relative_table", transformation.relative.clone(), persistent=False)

    def views(self, images: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """2N views (the two copies, stacked) of a uint8 batch and the relating elements (N,)."""
        t = self.transformation
        x = self.augment(images, generator)
        a = t.sample(x.shape[0], generator, x.device)
        b = t.sample(x.shape[0], generator, x.device)
        pair = [t.apply_drawn(x, a, generator), t.apply_drawn(x, b, generator)]
        return torch.cat(pair), self.relative_table[a, b]

    def loss(self, h: Tensor, targets: Tensor) -> tuple[Tensor, Metrics]:
        n = h.shape[0] // 2
        loss, acc = self.heads.loss(torch.cat([h[:n], h[n:]], 1), targets)
        return loss, {f"{self.name}_loss": loss.detach(), f"{self.name}_acc": acc}
