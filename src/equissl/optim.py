"""Optimisers and learning-rate schedules: SGD (optionally Nesterov), LARS or Adam; linear warm-up
then cosine, a constant rate, or steps at fixed epochs."""

from __future__ import annotations

import functools
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
    model: nn.Module,
    classifier: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    classifier_lr: float,
    classifier_weight_decay: float = 0.0,
    bias_lr: float | None = None,
    fixed: nn.Module | None = None,
) -> list[dict]:
    """The SSL parameters and the online classifier, which trains on detached features at its
    own lr and weight decay (Wang et al.'s runs: the SSL ones, one optimiser for both).

    `bias_lr`: the SSL biases and norm parameters (1-D) get their own group at this lr (Barlow
    Twins' ImageNet recipe). `fixed`: its parameters get a group marked `fixed`, whose lr the
    schedule leaves at the base value (SimSiam's `--fix-pred-lr` for the predictor). Without
    either there are two groups, as checkpoints of earlier releases hold."""
    head = {id(p) for p in classifier.parameters()}
    pinned = {id(p) for p in fixed.parameters()} if fixed is not None else set()
    ssl = [p for p in model.parameters() if id(p) not in head and p.requires_grad]
    moving = [p for p in ssl if id(p) not in pinned]
    groups = []
    if bias_lr is None:
        groups.append({"params": moving, "lr": lr, "weight_decay": weight_decay, "lars": True})
    else:
        weights = [p for p in moving if p.ndim > 1]
        biases = [p for p in moving if p.ndim <= 1]
        groups.append({"params": weights, "lr": lr, "weight_decay": weight_decay, "lars": True})
        groups.append({"params": biases, "lr": bias_lr, "weight_decay": weight_decay, "lars": True})
    if pinned:
        fixed_params = [p for p in ssl if id(p) in pinned]
        groups.append(
            {
                "params": fixed_params,
                "lr": lr,
                "weight_decay": weight_decay,
                "lars": True,
                "fixed": True,
            }
        )
    groups.append(
        {
            "params": list(classifier.parameters()),
            "lr": classifier_lr,
            "weight_decay": classifier_weight_decay,
            "lars": False,
        }
    )
    return groups


OPTIMIZERS = ("sgd", "lars", "adam")
SCHEDULES = ("warmup_cosine", "constant", "multistep")


def build_optimizer(
    name: str,
    groups: list[dict],
    *,
    momentum: float,
    eta: float = 0.02,
    nesterov: bool = False,
) -> torch.optim.Optimizer:
    """`sgd` (heavy-ball or Nesterov momentum), `lars` (trust ratios on >1-D weights) or `adam`
    (coupled L2 weight decay, as torch.optim.Adam: CARE's official optimiser)."""
    if name == "lars":
        return LARS(groups, lr=groups[0]["lr"], momentum=momentum, eta=eta)
    plain = [{k: v for k, v in g.items() if k != "lars"} for g in groups]
    if name == "adam":
        return torch.optim.Adam(plain, lr=plain[0]["lr"])
    return torch.optim.SGD(plain, lr=plain[0]["lr"], momentum=momentum, nesterov=nesterov)


def warmup_cosine(step: int, *, warmup_steps: int, total_steps: int, end: float = 0.0) -> float:
    """Learning-rate factor: linear from 0 over the warm-up, then cosine down to `end` (a
    fraction of the peak) at the end."""
    if step < warmup_steps:
        return step / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    q = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return q + end * (1.0 - q)


def multistep(step: int, *, steps_per_epoch: int, milestones: list[float], gamma: float) -> float:
    """Learning-rate factor: gamma^k after the k-th milestone epoch (torch's MultiStepLR, per
    step)."""
    passed = sum(step >= round(m * steps_per_epoch) for m in milestones)
    return gamma**passed


def constant(step: int) -> float:
    """Learning-rate factor 1 at every step (CARE's Adam runs have no schedule)."""
    return 1.0


def schedule_factor(
    name: str,
    *,
    steps_per_epoch: int,
    epochs: int,
    warmup_epochs: float,
    end: float = 0.0,
    milestones: list[float] = (),
    gamma: float = 0.1,
):
    """The per-step factor function of a named schedule (for LambdaLR)."""
    if name == "constant":
        return constant
    if name == "multistep":
        return functools.partial(
            multistep, steps_per_epoch=steps_per_epoch, milestones=list(milestones), gamma=gamma
        )
    return functools.partial(
        warmup_cosine,
        warmup_steps=int(warmup_epochs * steps_per_epoch),
        total_steps=epochs * steps_per_epoch,
        end=end,
    )
