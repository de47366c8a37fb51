"""Optimisers and the learning-rate schedule: SGD or LARS, linear warm-up then cosine, per step."""

from __future__ import annotations

import math

import torch
from torch import nn


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise trust ratios; biases and norm parameters are not adapted."""

    def __init__(
        self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 0.02
    ):
        super().__init__(
            params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, lars=True)
        )

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["lars"] and p.ndim > 1:
                    grad = grad.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = p.norm(), grad.norm()
                    trust = torch.where(
                        (w_norm > 0) & (g_norm > 0),
                        group["eta"] * w_norm / g_norm,
                        torch.ones_like(w_norm),
                    )
                    grad = grad * trust
                buf = self.state[p].get("momentum_buffer")
                if buf is None:
                    buf = self.state[p]["momentum_buffer"] = grad.clone()
                else:
                    buf.mul_(group["momentum"]).add_(grad)
                p.add_(buf, alpha=-group["lr"])
        return loss


def param_groups(
    model: nn.Module, classifier: nn.Module, *, lr: float, weight_decay: float, classifier_lr: float
):
    """The SSL parameters and the online classifier, which trains on detached features at its own lr."""
    head = {id(p) for p in classifier.parameters()}
    ssl = [p for p in model.parameters() if id(p) not in head and p.requires_grad]
    return [
        {"params": ssl, "lr": lr, "weight_decay": weight_decay, "lars": True},
        {
            "params": list(classifier.parameters()),
            "lr": classifier_lr,
            "weight_decay": 0.0,
            "lars": False,
        },
    ]


def build_optimizer(
    name: str, groups: list[dict], *, momentum: float, eta: float = 0.02
) -> torch.optim.Optimizer:
    if name == "lars":
        return LARS(groups, lr=groups[0]["lr"], momentum=momentum, eta=eta)
    plain = [{k: v for k, v in g.items() if k != "lars"} for g in groups]
    return torch.optim.SGD(plain, lr=plain[0]["lr"], momentum=momentum)


def warmup_cosine(step: int, *, warmup_steps: int, total_steps: int, end: float = 0.0) -> float:
    """Learning-rate factor: linear from 0 over the warm-up, then cosine down to `end` (a
    fraction of the peak) at the end."""
    if step < warmup_steps:
        return step / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    q = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return q + end * (1.0 - q)
