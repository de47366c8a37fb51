"""One training step for every loop (the Lightning module, `equissl bench`, photonics), with one
seed rule: an epoch's order comes from (seed, epoch), every random draw of step s from
(seed, s, rank). A resumed run then repeats an uninterrupted one exactly, and a step of `bench`
draws what the same step of training draws."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from equissl.seeds import hashed_seed

# A loss of a batch: (images, labels or None, the step's generator) -> (loss, metrics)
StepLoss = Callable[[Tensor, "Tensor | None", torch.Generator], tuple[Tensor, dict[str, Tensor]]]


def epoch_permutation(n: int, *, seed: int, epoch: int) -> Tensor:
    """The order of the n samples in epoch `epoch`, drawn on the CPU (the same on any device)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def epoch_rows(
    n: int, batch: int, *, seed: int, epoch: int, world: int = 1, rank: int = 0
) -> Tensor:
    """Process `rank`'s batches of the epoch: (n // batch, batch // world) sample indices.

    Step s of the global batch `batch` is split over `world` processes, rank r taking its r-th
    slice, so the processes see disjoint samples; the n mod batch left over are skipped."""
    steps = n // batch
    perm = epoch_permutation(n, seed=seed, epoch=epoch)[: steps * batch]
    return perm.view(steps, world, batch // world)[:, rank]


def step_generator(
    seed: int, step: int, rank: int = 0, device: torch.device | str = "cpu"
) -> torch.Generator:
    """The generator of every random draw of step `step` on process `rank`."""
    return torch.Generator(device=device).manual_seed(hashed_seed(f"{seed}:{step}:{rank}"))


def step_loss(
    loss: StepLoss,
    images: Tensor,
    labels: Tensor | None,
    rows: Tensor,
    *,
    seed: int,
    step: int,
    rank: int = 0,
    device: torch.device | str | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """`loss` of the samples `rows` of `images` (and `labels`), with step `step`'s generator.

    The rows are gathered where the set lives (`rows` and `labels` live there too) and the batch
    goes to `device` (default: the set's) without waiting for the copy."""
    device = images.device if device is None else torch.device(device)
    x = images[rows].to(device, non_blocking=True)
    y = None if labels is None else labels[rows].to(device, non_blocking=True)
    return loss(x, y, step_generator(seed, step, rank, device))


def update(
    loss: Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> None:
    """One optimiser update from `loss` (for the loops that are not Lightning's)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
