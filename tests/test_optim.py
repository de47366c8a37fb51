import math

import pytest
import torch

from equissl.optim import LARS, warmup_cosine


def test_warmup_cosine_reference_points():
    f = lambda s: warmup_cosine(s, warmup_steps=10, total_steps=110)  # noqa: E731
    assert f(0) == 0.0
    assert f(5) == pytest.approx(0.5)
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.5)
    assert f(110) == pytest.approx(0.0, abs=1e-12)
    assert f(35) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))


def test_lars_step_matches_the_formula():
    w = torch.tensor([[3.0, 4.0]], requires_grad=True)  # norm 5
    b = torch.tensor([1.0], requires_grad=True)
    opt = LARS(
        [{"params": [w], "lars": True}, {"params": [b], "lars": False}],
        lr=0.1,
        momentum=0.9,
        weight_decay=0.0,
        eta=0.02,
    )
    w.grad = torch.tensor([[0.0, 2.0]])  # norm 2
    b.grad = torch.tensor([0.5])
    opt.step()
    trust = 0.02 * 5 / 2
    assert torch.allclose(w.detach(), torch.tensor([[3.0, 4.0 - 0.1 * trust * 2.0]]))
    assert torch.allclose(b.detach(), torch.tensor([1.0 - 0.1 * 0.5]))  # not adapted


def test_multistep_factor_is_torchs_multisteplr_per_step():
    """Wang et al.'s EqResNet recipe: MultiStepLR([60, 120, 160], 0.2), here per step."""
    from equissl.optim import multistep

    steps = 7
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    ref = torch.optim.lr_scheduler.MultiStepLR(opt, [6, 12, 16], gamma=0.2)
    for epoch in range(20):
        for s in range(steps):
            got = multistep(
                epoch * steps + s, steps_per_epoch=steps, milestones=[6, 12, 16], gamma=0.2
            )
            assert got == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12), (epoch, s)
        opt.step()
        ref.step()


def test_schedule_factor_by_name():
    from equissl.optim import schedule_factor

    kw = dict(steps_per_epoch=10, epochs=11, warmup_epochs=1)
    assert schedule_factor("constant", **kw)(57) == 1.0
    assert schedule_factor("warmup_cosine", **kw)(5) == pytest.approx(0.5)
    f = schedule_factor("multistep", milestones=[2, 4], gamma=0.5, **kw)
    assert [f(19), f(20), f(40)] == [1.0, 0.5, 0.25]


def test_adam_and_nesterov_are_torchs():
    from equissl.optim import build_optimizer

    w = torch.nn.Parameter(torch.ones(3))
    groups = [{"params": [w], "lr": 1e-3, "weight_decay": 1e-6, "lars": True}]
    adam = build_optimizer("adam", groups, momentum=0.9)
    assert isinstance(adam, torch.optim.Adam)
    assert adam.param_groups[0]["weight_decay"] == 1e-6
    sgd = build_optimizer("sgd", groups, momentum=0.9, nesterov=True)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["nesterov"]
