"""The online linear classifier on backbone features, and Wang et al.'s class-information
modes: its class loss may also reach the encoder (`joint`) or push class information out of
it (`eliminate`)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def masked_cross_entropy(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Mean CE and accuracy over labelled images (label -1 is skipped; none labelled gives 0)."""
    labelled = labels >= 0
    count = labelled.sum().clamp(min=1)
    per_image = F.cross_entropy(logits.float(), labels.clamp(min=0), reduction="none")
    hits = ((logits.argmax(1) == labels) & labelled).float().sum()
    return (per_image * labelled).sum() / count, (hits / count).detach()


class OnlineClassifier(nn.Linear):
    """A linear classifier (an `nn.Linear`: checkpoints keep `classifier.weight/bias`) trained
    on detached features. `mode`: detached | joint (+`class_weight` x class CE reaches the
    encoder) | eliminate (-`class_weight` x class CE). `signed`: that term trains the classifier too, with one
    optimiser over every parameter (Wang et al.'s verification.py: its `add` mode has no other
    classifier loss, its `eliminate` mode steps the classifier again on (1 - w) CE)."""

    def __init__(
        self,
        features: int,
        classes: int,
        mode: str = "detached",
        class_weight: float = 1.0,
        signed: bool = False,
    ) -> None:
        super().__init__(features, classes)
        self.mode, self.class_weight, self.signed = mode, class_weight, signed

    def loss(
        self, probe: Tensor, labels: Tensor, total: Tensor, metrics: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor]:
        """The method's loss `total` with any class term on features `probe` added, and the
        classifier's own weighted CE; records online_loss, online_acc and class_loss."""
        online, metrics["online_acc"] = masked_cross_entropy(self(probe.detach().float()), labels)
        metrics["online_loss"] = online.detach()
        if self.mode == "detached":
            return total, 1.0 * online
        sign = 1.0 if self.mode == "joint" else -1.0
        w, b = self.weight, self.bias
        if not self.signed:  # through a frozen copy of the classifier
            w, b = w.detach(), b.detach()
        class_loss = masked_cross_entropy(F.linear(probe.float(), w, b), labels)[0]
        metrics["class_loss"] = class_loss.detach()
        online_weight = (0.0 if sign > 0 else 1.0 - self.class_weight) if self.signed else 1.0
        return total + sign * self.class_weight * class_loss, online_weight * online
