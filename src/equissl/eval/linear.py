"""Linear probe on cached frozen features, with several seeds trained as one batched problem."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch

from equissl.errors import UserError
from equissl.eval.validation import check_splits

SOLVERS = ("adamw", "lbfgs")


def standardiser(
    train_x: torch.Tensor, eps: float = 1e-6
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The map x -> (x - mean) / std with the per-feature mean and std of `train_x` (constant
    features -> 0)."""
    std, mean = torch.std_mean(train_x, dim=0, correction=0)
    std = std.clamp_min(eps)
    return lambda x: (x - mean) / std


def standardise(
    train_x: torch.Tensor, *others: torch.Tensor, eps: float = 1e-6
) -> list[torch.Tensor]:
    """Scale every tensor by the per-feature mean and std of `train_x` (constant features -> 0)."""
    scale = standardiser(train_x, eps)
    return [scale(x) for x in (train_x, *others)]


def init_heads(
    generators: Sequence[torch.Generator], dim: int, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.Linear-style uniform init, one draw per generator: weights (S, C, D), biases (S, C)."""
    bound = 1.0 / math.sqrt(dim)
    weights = [(torch.rand(num_classes, dim, generator=g) * 2 - 1) * bound for g in generators]
    biases = [(torch.rand(num_classes, generator=g) * 2 - 1) * bound for g in generators]
    return torch.stack(weights), torch.stack(biases)


@torch.no_grad()
def fit_linear_heads(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    seeds: Sequence[int],
    epochs: int = 100,
    batch_size: int = 1024,
    lr: float = 0.01,
    weight_decay: float = 1e-5,
    chunk_rows: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train one softmax classifier per seed on float features `x` (N, D) and labels `y` (N,).

    All S seeds form one batched problem, each with its own torch.Generator for the init and for
    a fresh mini-batch permutation every epoch; AdamW with a per-step cosine-decayed lr. The
    cross-entropy gradient is computed in closed form and every operation acts on each seed
    separately, so a seed's result does not depend on which seeds are trained alongside it.
    `chunk_rows` (default: about 512 KB of features per seed on CPU, the whole batch elsewhere)
    only sets how many rows of each batch are processed at a time; it does not change the math.
    Returns weights (S, D, C) and biases (S, C) on x's device.
    """
    n, dim = x.shape
    num_seeds = len(seeds)
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    # Logits are kept as (S, C, B): softmax over a short middle dim is much faster on CPU
    # than over a short last dim, and grad = (S, C, B) @ (S, B, D) is a well-shaped bmm.
    weight, bias = (t.to(x.device, x.dtype) for t in init_heads(generators, dim, num_classes))
    weight.grad, bias.grad = torch.zeros_like(weight), torch.zeros_like(bias)
    fused = x.device.type in ("cpu", "cuda") or None
    opt = torch.optim.AdamW([weight, bias], lr=lr, weight_decay=weight_decay, fused=fused)
    y = y.to(x.device, torch.long)
    # On CPU each batch is gathered and used in cache-sized chunks, so the forward and backward
    # matmuls read them from cache; the chunk size does not depend on S.
    if chunk_rows is None:
        chunk_rows = max(16, 2**17 // dim) if x.device.type == "cpu" else batch_size
    rows = min(batch_size, n, chunk_rows)
    chunk = torch.empty(num_seeds * rows, dim, device=x.device, dtype=x.dtype)
    minus_one = torch.full((num_seeds, 1, rows), -1.0, device=x.device, dtype=x.dtype)
    total_steps = epochs * math.ceil(n / batch_size)
    step = 0
    for _ in range(epochs):
        order = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(x.device)
        labels = y[order].unsqueeze(1)  # (S, 1, N)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            weight.grad.zero_()
            bias.grad.zero_()
            for first in range(start, stop, rows):
                last = min(first + rows, stop)
                idx = order[:, first:last].reshape(-1)
                xb = torch.index_select(x, 0, idx, out=chunk[: idx.numel()])
                xb = xb.view(num_seeds, last - first, dim)
                # d(cross-entropy)/d(logits) = softmax - onehot, summed over the batch here
                grad = torch.baddbmm(bias.unsqueeze(2), weight, xb.transpose(1, 2)).softmax(1)
                grad.scatter_add_(1, labels[..., first:last], minus_one[..., : last - first])
                weight.grad.baddbmm_(grad, xb)
                bias.grad.add_(grad.sum(2))
            weight.grad /= stop - start
            bias.grad /= stop - start
            opt.param_groups[0]["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))
            opt.step()
            step += 1
    return weight.transpose(1, 2).contiguous(), bias.detach()


def fit_linear_lbfgs(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    weight_decay: float = 1e-5,
    max_iter: int = 500,
    tolerance: float = 1e-7,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The softmax classifier minimising the full-batch cross-entropy + weight_decay/2 |W|^2 on
    cached features, by L-BFGS with a strong-Wolfe line search: a convex problem, so the result
    does not depend on a seed, and one pass over the features per iteration is all it costs.
    Returns weight (1, D, C) and bias (1, C), the layout of `fit_linear_heads`."""
    n, dim = x.shape
    y = y.to(x.device, torch.long)
    weight = torch.zeros(dim, num_classes, device=x.device, dtype=x.dtype, requires_grad=True)
    bias = torch.zeros(num_classes, device=x.device, dtype=x.dtype, requires_grad=True)
    opt = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=tolerance,
        tolerance_change=tolerance * 1e-2,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(torch.addmm(bias, x, weight), y)
        loss = loss + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return weight.detach().unsqueeze(0), bias.detach().unsqueeze(0)


def head_logits(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Logits (S, N, C) of S linear heads, weight (S, D, C) and bias (S, C), on x (N, D)."""
    return torch.einsum("nd,sdc->snc", x, weight) + bias.unsqueeze(1)


@torch.no_grad()
def head_accuracies(
    x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> list[float]:
    """Accuracy in percent of each of the S heads on features x (N, D), labels y (N,)."""
    correct = head_logits(x, weight, bias).argmax(-1) == y.to(x.device).unsqueeze(0)
    return (100.0 * correct.double().mean(1)).tolist()


def linear_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    *,
    num_classes: int,
    seeds: int = 3,
    epochs: int = 100,
    batch_size: int = 1024,
    lr: float = 0.01,
    weight_decay: float = 1e-5,
    device: torch.device | str = "cpu",
    seed: int = 0,
    solver: str = "adamw",
    return_heads: bool = False,
) -> dict:
    """Linear-probe accuracy of frozen features, averaged over seeds seed, seed+1, ...

    Features are standardised with the train mean/std, then `seeds` linear classifiers are trained
    at once (solver `adamw`: mini-batch AdamW for `epochs`, see `fit_linear_heads`), or the one
    full-batch optimum is found (solver `lbfgs`, see `fit_linear_lbfgs`: seconds on 50,000
    cached features; seeds and epochs do not apply). Returns {"acc_mean", "acc_std" (sample std
    over seeds, 0 for one), "accs" (per seed), "train_acc_mean"} in percent and "seconds" (wall
    time); with `return_heads`, also "heads": a function mapping raw test-like features to the
    (S, N, C) logits of the trained heads (standardised as the training features were).
    """
    began = time.perf_counter()
    check_splits(train_x, train_y, test_x, test_y, num_classes)
    if seeds < 1 or epochs < 1 or batch_size < 1:
        raise UserError(
            f"seeds, epochs and batch_size must be at least 1, got {seeds}, {epochs}, {batch_size}"
        )
    if solver not in SOLVERS:
        raise UserError(
            f"unknown linear probe solver '{solver}'; choose one of {', '.join(SOLVERS)}"
        )
    device = torch.device(device)
    train_x = train_x.to(device, torch.float32)
    scale = standardiser(train_x)
    train_x, test_x = scale(train_x), scale(test_x.to(device, torch.float32))
    if solver == "lbfgs":
        weight, bias = fit_linear_lbfgs(
            train_x, train_y, num_classes=num_classes, weight_decay=weight_decay
        )
    else:
        weight, bias = fit_linear_heads(
            train_x,
            train_y,
            num_classes=num_classes,
            seeds=range(seed, seed + seeds),
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
        )
    accs = head_accuracies(test_x, test_y, weight, bias)
    train_accs = head_accuracies(train_x, train_y, weight, bias)
    accs_t = torch.tensor(accs, dtype=torch.float64)
    out = {
        "acc_mean": accs_t.mean().item(),
        "acc_std": accs_t.std().item() if len(accs) > 1 else 0.0,
        "accs": accs,
        "train_acc_mean": sum(train_accs) / len(train_accs),
        "seconds": time.perf_counter() - began,
    }
    if return_heads:
        out["heads"] = lambda features: head_logits(
            scale(features.to(device, torch.float32)), weight, bias
        )
    return out
