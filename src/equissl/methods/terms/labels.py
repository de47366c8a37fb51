"""Classification heads on transformation labels, shared by the `predict` and `relative` terms."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from equissl.objectives import prediction_loss
from equissl.transforms import Transformation


class LabelHeads(nn.ModuleList):
    """One head over the joint labels of `transformation`, or (`separate`, for a product "a+b")
    one head per factor; a subclass of `nn.ModuleList`, so checkpoints keep `heads.<k>.*`."""

    def __init__(
        self, heads: Iterable[nn.Module], transformation: Transformation, separate: bool = False
    ) -> None:
        super().__init__(heads)
        self.transformation = transformation
        self.separate = separate

    def loss(self, x: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Cross-entropy and accuracy (all factors right) of the heads on `x` against the
        joint labels `targets`."""
        outputs = [head(x) for head in self]
        if not self.separate:
            return prediction_loss(outputs[0], targets)
        pairs = list(zip(outputs, self.transformation.split_labels(targets), strict=True))
        loss = torch.stack([F.cross_entropy(o.float(), y) for o, y in pairs]).mean()
        right = torch.stack([o.argmax(1) == y for o, y in pairs]).all(0)
        return loss, right.float().mean().detach()

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """The predicted joint labels."""
        outputs = [head(x).argmax(1) for head in self]
        if not self.separate:
            return outputs[0]
        label = torch.zeros_like(outputs[0])
        for factor, out in zip(self.transformation.factors, outputs, strict=True):
            label = label * factor.num_labels + out
        return label
