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
