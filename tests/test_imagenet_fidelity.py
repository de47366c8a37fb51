"""E-SSL's ImageNet recipe (rdangovs/essl imagenet/simclr/main.py, read at 359b27c): its LARS
step, its learning-rate schedule and its rotation head, each against a reference written here
from the official code, with a check that equissl's previous setting differs."""

import math

import pytest
import torch

from equissl.app.config import build_config
from equissl.models import transformation_head
from equissl.optim import LARS, param_groups, warmup_cosine


def official_lars_steps(params, grads, *, lr, weight_decay, momentum, eta):
    """main.py `LARS.step`: for a parameter with ndim > 1, dp = g + wd p, then dp x eta ||p|| /
    ||dp|| (1 where a norm is 0); 1-D parameters (biases, norms) neither decay nor adapt;
    mu = momentum mu + dp (mu starts at 0); p -= lr mu. Float64, one step per gradient."""
    params = [p.clone().double() for p in params]
    mus = [torch.zeros_like(p) for p in params]
    for step_grads in grads:
        for p, g, mu in zip(params, step_grads, mus, strict=True):
            dp = g.double()
            if p.ndim > 1:
                dp = dp + weight_decay * p
                pn, un = float(p.norm()), float(dp.norm())
                dp = dp * (eta * pn / un if pn > 0 and un > 0 else 1.0)
            mu.mul_(momentum).add_(dp)
            p.sub_(lr * mu)
    return params


def test_lars_matches_the_official_step_and_the_preset_uses_eta_0_001():
    eta = build_config(["imagenet-esimclr"]).optim.lars_eta
    assert eta == 0.001
    g = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(6, 5, generator=g), torch.randn(6, generator=g)
    grads = [[torch.randn(6, 5, generator=g), torch.randn(6, generator=g)] for _ in range(3)]
    want = official_lars_steps(
        [weight, bias], grads, lr=4.8, weight_decay=1e-6, momentum=0.9, eta=eta
    )

    def run(eta_used):
        model = torch.nn.Linear(5, 6).double()
        with torch.no_grad():
            model.weight.copy_(weight)
            model.bias.copy_(bias)
        groups = param_groups(
            model, torch.nn.Identity(), lr=4.8, weight_decay=1e-6, classifier_lr=0
        )
        groups = [g for g in groups if g["params"]]
        opt = LARS(groups, lr=4.8, momentum=0.9, weight_decay=1e-6, eta=eta_used)
        for step_grads in grads:
            model.weight.grad, model.bias.grad = (x.double() for x in step_grads)
            opt.step()
        return [model.weight.detach(), model.bias.detach()]

    for got, ref in zip(run(eta), want, strict=True):
        assert torch.allclose(got, ref, rtol=1e-10, atol=1e-12)
    # mutation check: the previous eta (0.02) takes 20 times larger weight steps
    assert not torch.allclose(run(0.02)[0], want[0], atol=1e-6)


def official_lr(step, *, base_lr, warmup_steps, max_steps):
    """main.py `adjust_learning_rate`: linear warm-up, then base q + 0.001 base (1 - q)."""
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    step, max_steps = step - warmup_steps, max_steps - warmup_steps
    q = 0.5 * (1 + math.cos(math.pi * step / max_steps))
    return base_lr * q + base_lr * 0.001 * (1 - q)


@pytest.mark.parametrize("step", [0, 5, 10, 11, 40, 77, 99, 100])
def test_schedule_ends_at_a_thousandth_of_the_peak(step):
    end = build_config(["imagenet-esimclr"]).optim.end_lr
    kw = dict(warmup_steps=10, total_steps=100)
    want = official_lr(step, base_lr=4.8, warmup_steps=10, max_steps=100)
    assert 4.8 * warmup_cosine(step, **kw, end=end) == pytest.approx(want, rel=1e-12, abs=1e-15)
    if step == 100:  # mutation check: the previous schedule ends at 0
        assert 4.8 * warmup_cosine(step, **kw) != pytest.approx(want, rel=1e-3)


def test_the_rotation_head_is_the_official_one():
    """main.py `rotation_projector`: Linear(2048, 2048)-LN-ReLU-Linear(2048, 2048)-LN-ReLU-
    Linear(2048, 128)-LN-Linear(128, 4): 8,663,940 parameters."""
    term = build_config(["imagenet-esimclr"]).method.equivariance[0]
    head = transformation_head(2048, term.head_hidden, 4, bottleneck=term.head_bottleneck)
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["Linear", "LayerNorm", "ReLU"] * 2 + ["Linear", "LayerNorm", "Linear"]
    assert [m.out_features for m in head if isinstance(m, torch.nn.Linear)] == [2048, 2048, 128, 4]
    assert sum(p.numel() for p in head.parameters()) == 8_663_940
    # mutation check: the previous head (hidden 4 x 2048, no bottleneck) has 84M parameters
    previous = transformation_head(2048, 4 * 2048, 4)
    assert sum(p.numel() for p in previous.parameters()) > 80_000_000


def test_colour_jitter_saturation_is_0_2():
    """main.py `Transform`: ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)."""
    assert list(build_config(["imagenet-esimclr"]).augment.jitter) == [0.4, 0.4, 0.2, 0.1]


def _scheduled(preset: str, overrides: list[str], steps: list[int]):
    """The optimiser groups of a preset (a tiny ResNet and heads) and each group's lr at the
    given steps, through PretrainModule's own optimiser and scheduler."""
    from equissl.app.train import PretrainModule
    from equissl.methods import build_method

    cfg = build_config([preset], ["backbone.width=4", "optim.epochs=10", *overrides])
    method = build_method(cfg, in_channels=3, image_size=16, num_classes=4, mean=torch.zeros(3), std=torch.ones(3))  # fmt: skip
    images = torch.zeros(cfg.optim.batch_size * 10, 3, 16, 16, dtype=torch.uint8)  # 10 steps/epoch
    module = PretrainModule(cfg, method, images, torch.zeros(len(images), dtype=torch.long))
    setup = module.configure_optimizers()
    optimizer, scheduler = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
    lrs, step = [], 0
    for target in steps:
        while step < target:
            optimizer.step()
            scheduler.step()
            step += 1
        lrs.append([g["lr"] for g in optimizer.param_groups])
    return method, optimizer.param_groups, lrs


def test_barlow_twins_biases_and_norms_train_at_their_own_rate():
    """barlowtwins/main.py: two LARS groups, `param_weights` (ndim > 1) and `param_biases`
    (1-D), and `adjust_learning_rate` sets group 0 to lr x 0.2 and group 1 to lr x 0.0048, where
    lr = batch/256 x the warm-up-cosine factor (ending at 0.001). The previous preset trained
    both at 0.2 x batch/256."""
    steps = [0, 50, 100, 101, 555, 1000]
    tiny = ["method.proj_hidden=16", "method.proj_dim=16", "method.equivariance.0.head_hidden=8",
            "method.equivariance.0.head_bottleneck=4", "optim.batch_size=8", "optim.epochs=100"]  # fmt: skip
    method, groups, lrs = _scheduled("imagenet-ebarlow_twins", tiny, steps)
    weights, biases = groups[0], groups[1]
    assert all(p.ndim > 1 for p in weights["params"]) and all(p.ndim == 1 for p in biases["params"])
    ssl = [p for p in method.parameters() if p.requires_grad]
    assert len(weights["params"]) + len(biases["params"]) + len(groups[2]["params"]) == len(ssl)
    scale = 8 / 256
    for step, got in zip(steps, lrs, strict=True):
        factor = official_lr(step, base_lr=1.0, warmup_steps=100, max_steps=1000)
        assert got[0] == pytest.approx(0.2 * scale * factor, rel=1e-12, abs=1e-18)
        assert got[1] == pytest.approx(0.0048 * scale * factor, rel=1e-12, abs=1e-18)
    _, _, before = _scheduled("imagenet-ebarlow_twins", [*tiny, "optim.bias_lr=null"], [555])
    assert len(before[0]) == 2  # mutation check: one SSL group (and the classifier) as before


def test_simsiam_predictor_keeps_its_initial_rate():
    """simsiam main.py `--fix-pred-lr`: the predictor's group keeps init_lr = 0.05 x 512/256
    while the encoder's follows 0.5 (1 + cos(pi epoch / epochs)); the previous preset decayed
    the predictor too."""
    tiny = ["method.proj_hidden=16", "method.proj_dim=16", "method.pred_hidden=8",
            "method.equivariance.0.head_hidden=8", "method.equivariance.0.head_bottleneck=4",
            "optim.batch_size=8"]  # fmt: skip
    steps = [0, 30, 99]
    method, groups, lrs = _scheduled("imagenet-esimsiam", tiny, steps)
    fixed = [g for g in groups if g.get("fixed")]
    assert len(fixed) == 1
    assert {id(p) for p in fixed[0]["params"]} == {
        id(p) for p in method.invariance.predictor.parameters()
    }
    init = 0.05 * 8 / 256
    for step, got in zip(steps, lrs, strict=True):
        i = groups.index(fixed[0])
        assert got[i] == pytest.approx(init, rel=1e-12)
        assert got[0] == pytest.approx(init * 0.5 * (1 + math.cos(math.pi * step / 100)), rel=1e-12)
    _, groups, lrs = _scheduled(
        "imagenet-esimsiam", [*tiny, "optim.fixed_predictor_lr=false"], [99]
    )
    assert not any(g.get("fixed") for g in groups) and lrs[0][0] < init / 100  # mutation check
