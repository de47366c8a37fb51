"""Regress: predict the difference of two views' crop boxes and colour jitter (AugSelf)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from equissl.augment import Augment
from equissl.methods.terms.parameters import PARAMS_PER_PART, parameter_difference
from equissl.methods.views import InvarianceViews

Metrics = dict[str, Tensor]


class Regress(nn.Module):
    """Two views and the difference of their parameters `parts` ("crop", "jitter"), one head of
    `heads` per part reading both views' features side by side, both view orders; loss: the sum
    over parts of MSE(tanh(prediction), difference). The views are the term's own, drawn by
    `augment`, or (`shared`) the invariance views of the step, whose parameters `shared` keeps:
    then `views` gives None and the method passes the invariance views' features."""

    representation = False  # reads the orientation features (an EqResNet's group axis)

    def __init__(
        self,
        name: str,
        weight: float,
        *,
        heads: nn.ModuleList,
        parts: list[str],
        augment: Augment | None = None,
        shared: InvarianceViews | None = None,
    ) -> None:
        super().__init__()
        if (augment is None) == (shared is None):
            raise ValueError("Regress needs exactly one of augment and shared")
        self.name, self.weight, self.heads, self.parts = name, weight, heads, list(parts)
        self.augment, self.shared = augment, shared

    def views(self, images: Tensor, generator: torch.Generator) -> tuple[Tensor | None, Tensor]:
        """2N views of a uint8 batch (None when shared) and their parameter differences."""
        if self.shared is not None:
            (p1, p2), jitter = self.shared.params, self.shared.jitter
            return None, parameter_difference(p1, p2, self.parts, images.shape[-1], jitter)
        (v1, p1), (v2, p2) = (self.augment(images, generator, return_params=True) for _ in "12")
        targets = parameter_difference(p1, p2, self.parts, images.shape[-1], self.augment.jitter)
        return torch.cat([v1, v2]), targets

    def loss(self, h: Tensor, targets: Tensor) -> tuple[Tensor, Metrics]:
        n = h.shape[0] // 2
        x = torch.cat([torch.cat([h[:n], h[n:]], 1), torch.cat([h[n:], h[:n]], 1)])
        parts = targets.float().split(PARAMS_PER_PART, dim=1)
        mse = sum(
            F.mse_loss(torch.tanh(head(x).float()), t)
            for head, t in zip(self.heads, parts, strict=True)
        )
        return mse, {f"{self.name}_loss": mse.detach()}
