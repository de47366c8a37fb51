"""Predict: cross-entropy on the label of the transformation applied to a view (E-SSL).

E-SimCLR's term: a small crop (`augment`), expanded into all four rotations (`expand`), whose
rotation a head on the backbone's features predicts.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from equissl.augment import Augment
from equissl.methods.terms.labels import LabelHeads
from equissl.transforms import Transformation

Metrics = dict[str, Tensor]


class Predict(nn.Module):
    """`weight` x CE of `heads` on the element of `transformation` applied to a view of size
    `size` drawn by `augment`: every element per image (`expand`, K*N views in label blocks) or
    one sampled element each (N views). Metrics `<name>_loss` and `<name>_acc`."""

    representation = False  # reads the orientation features (an EqResNet's group axis)

    def __init__(
        self,
        name: str,
        weight: float,
        *,
        augment: Augment,
        transformation: Transformation,
        heads: LabelHeads,
        expand: bool = True,
    ) -> None:
        super().__init__()
        self.name, self.weight, self.expand = name, weight, expand
        self.augment, self.transformation, self.heads = augment, transformation, heads
        self.size = augment.size

    def views(self, images: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The transformed views (float in [0, 1]) of a uint8 batch and their labels."""
        t = self.transformation
        x = self.augment(images, generator)
        if self.expand:
            return t.expand(x)
        labels = t.sample(x.shape[0], generator, x.device)
        return t.apply_drawn(x, labels, generator), labels

    def loss(self, h: Tensor, targets: Tensor) -> tuple[Tensor, Metrics]:
        loss, acc = self.heads.loss(h, targets)
        return loss, {f"{self.name}_loss": loss.detach(), f"{self.name}_acc": acc}

    def predict(self, h: Tensor) -> Tensor:
        """Predicted labels of views from their features (held-out accuracy)."""
        return self.heads.predict(h)
