"""The one training step and its seed rule (equissl.step)."""

import torch

from equissl.seeds import hashed_seed
from equissl.step import epoch_permutation, epoch_rows, step_generator, step_loss, update


def test_epoch_rows_are_the_epoch_permutation_cut_into_batches_and_split_over_ranks():
    g = torch.Generator().manual_seed(5 * 1_000_003 + 2)
    perm = torch.randperm(50, generator=g)
    assert torch.equal(epoch_permutation(50, seed=5, epoch=2), perm)
    assert torch.equal(epoch_rows(50, 12, seed=5, epoch=2), perm[:48].view(4, 12))
    ranks = [epoch_rows(50, 12, seed=5, epoch=2, world=3, rank=r) for r in range(3)]
    assert torch.equal(torch.cat(ranks, 1), perm[:48].view(4, 12))  # step s: the ranks' slices
    assert not torch.equal(epoch_rows(50, 12, seed=5, epoch=3), epoch_rows(50, 12, seed=5, epoch=2))


def test_step_generator_depends_on_seed_step_and_rank_only():
    def draw(*key):
        return torch.rand(4, generator=step_generator(*key))

    expected = torch.rand(4, generator=torch.Generator().manual_seed(hashed_seed("7:3:1")))
    assert torch.equal(draw(7, 3, 1), expected) and torch.equal(draw(7, 3, 1), draw(7, 3, 1))
    assert (
        len({tuple(draw(*k).tolist()) for k in [(7, 3, 1), (7, 3, 0), (7, 4, 1), (8, 3, 1)]}) == 4
    )


def test_step_loss_gathers_the_rows_and_passes_the_steps_generator():
    images, labels = torch.arange(10.0).view(10, 1) * 10, torch.arange(10)
    rows = torch.tensor([7, 2, 2])
    seen = {}

    def loss(x, y, generator):
        seen.update(x=x, y=y, draw=torch.rand(3, generator=generator))
        return x.sum(), {}

    value, _ = step_loss(loss, images, labels, rows, seed=1, step=9, rank=2)
    assert value.item() == 110.0 and seen["y"].tolist() == [7, 2, 2]
    assert torch.equal(seen["draw"], torch.rand(3, generator=step_generator(1, 9, 2)))
    step_loss(loss, images, None, rows, seed=1, step=9)
    assert seen["y"] is None


def test_update_takes_one_optimiser_step_and_one_schedule_step():
    w = torch.nn.Parameter(torch.tensor(2.0))
    opt = torch.optim.SGD([w], lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.1**step)
    w.grad = torch.tensor(100.0)  # a stale gradient: cleared before the backward pass
    update(w**2, opt, sched)
    assert w.item() == 2.0 - 0.5 * 4.0 and opt.param_groups[0]["lr"] == 0.5 * 0.1
