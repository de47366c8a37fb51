"""The augmented linear probe against E-SSL's linear evaluation (rdangovs/essl `cifar10/main.py`,
read at 3522cd0, `eval_loop`): classifier nn.Linear(512, 10) trained with SGD(momentum 0.9,
lr 30, weight decay 0) on the frozen encoder's features of fresh views each batch,
`adjust_learning_rate(epochs=100, warmup_epochs=0, base_lr=30)` every step (lr = 30 x
0.5 (1 + cos(pi step / max_steps)), step counted over all epochs), cross-entropy; test images
`Resize(36, BICUBIC)` then `CenterCrop(32)`. And CARE's variant (Sharut/CARE
`cifar10_cifar100_stl10/linear.py` at 28718be: Adam lr 1e-3, weight decay 1e-6, `net.train()`)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from equissl.augment import to_float
from equissl.eval.linear import init_heads
from equissl.eval.linear_augmented import (
    AugmentedProbe,
    augmented_linear_probe,
    centre_view,
    train_probe_head,
)


def test_test_view_is_bicubic_resize_36_then_centre_crop_32():
    """Resize(36) of a 32x32 image then CenterCrop(32): rows and columns 2..33 of the resize.
    torch's antialiased bicubic is PIL's algorithm (tests/augment/test_bicubic_crop.py)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64)
    got = centre_view(x, 36, 32, "bicubic")
    want = F.interpolate(x, (36, 36), mode="bicubic", antialias=True)[..., 2:34, 2:34]
    assert got.shape == (2, 3, 32, 32)
    assert torch.allclose(got.double(), want, atol=1e-5)
    # mutation check: the cached probe's test images (unchanged) differ
    assert (got.double() - x).abs().max() > 1e-2
    # a non-square image: the shorter side goes to `resize` (torchvision's Resize(int))
    assert centre_view(torch.rand(1, 1, 20, 30), 10, 8, "bilinear").shape == (1, 1, 8, 8)


def official_head(features, labels, weight, bias, *, epochs, lr, constant=False, rates=None):
    """eval_loop in float64: SGD momentum 0.9 (buf = 0.9 buf + g, first buf = g; p -= lr buf),
    lr from adjust_learning_rate (cosine, no warm-up) at each global step, mean cross-entropy.
    One full batch per epoch (batch = N), so the order of the images does not matter."""
    w, b = weight.double().clone().requires_grad_(), bias.double().clone().requires_grad_()
    bufs = [None, None]
    for step in range(epochs):
        rate = lr if constant else lr * 0.5 * (1 + math.cos(math.pi * step / epochs))
        rate = rate if rates is None else rates[step]
        loss = F.cross_entropy(features.double() @ w.T + b, labels)
        grads = torch.autograd.grad(loss, [w, b])
        with torch.no_grad():
            for i, (p, g) in enumerate(zip((w, b), grads, strict=True)):
                bufs[i] = g.clone() if bufs[i] is None else bufs[i].mul(0.9).add(g)
                p.sub_(rate * bufs[i])
    return w.detach(), b.detach()


def test_training_follows_the_official_sgd_and_cosine_schedule():
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (16, 3, 4, 4), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 3, (16,), generator=g)
    encoder = nn.Flatten()
    mean, std = torch.zeros(3), torch.ones(3)
    recipe = AugmentedProbe(
        epochs=6,
        batch_size=16,
        seeds=1,
        train_augment="none",
        lr=0.5,
        test_resize=None,
        test_crop=None,
    )
    head = train_probe_head(encoder, images, labels, 3, recipe, mean, std, seed=7, device="cpu")
    weight, bias = init_heads([torch.Generator().manual_seed(7)], 48, 3)
    features = to_float(images).flatten(1)
    w, b = official_head(features, labels, weight[0], bias[0], epochs=6, lr=0.5)
    assert torch.allclose(head.weight.double(), w, rtol=1e-4, atol=1e-5)
    assert torch.allclose(head.bias.double(), b, rtol=1e-4, atol=1e-5)
    # mutation check: a constant learning rate ends elsewhere
    wc, _ = official_head(features, labels, weight[0], bias[0], epochs=6, lr=0.5, constant=True)
    assert (wc - w).abs().max() > 1e-3


def test_multistep_schedule_is_main_lincls_steps():
    """MoCo's main_lincls.py (CARE's ImageNet-100 probe): lr x 0.1 at each milestone epoch
    (adjust_learning_rate with --schedule 60 80), here milestones (2, 4) over 6 epochs."""
    g = torch.Generator().manual_seed(2)
    images = torch.randint(0, 256, (12, 3, 4, 4), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 3, (12,), generator=g)
    mean, std = torch.zeros(3), torch.ones(3)
    recipe = AugmentedProbe(
        epochs=6, batch_size=12, seeds=1, train_augment="none", lr=0.5, test_resize=None,
        test_crop=None, schedule="multistep", milestones=(2, 4),
    )  # fmt: skip
    head = train_probe_head(
        nn.Flatten(), images, labels, 3, recipe, mean, std, seed=3, device="cpu"
    )
    weight, bias = init_heads([torch.Generator().manual_seed(3)], 48, 3)
    features = to_float(images).flatten(1)
    rates = [0.5, 0.5, 0.05, 0.05, 0.005, 0.005]
    w, b = official_head(features, labels, weight[0], bias[0], epochs=6, lr=0.5, rates=rates)
    assert torch.allclose(head.weight.double(), w, rtol=1e-4, atol=1e-5)
    assert torch.allclose(head.bias.double(), b, rtol=1e-4, atol=1e-5)
    wc, _ = official_head(features, labels, weight[0], bias[0], epochs=6, lr=0.5, constant=True)
    assert (wc - w).abs().max() > 1e-3  # mutation check: without the steps


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())

    def forward(self, x):
        return self.net(x).mean((2, 3))


@pytest.mark.parametrize("bn", ["eval", "train"])
def test_probe_runs_with_both_recipes_and_leaves_the_encoder_alone(bn):
    g = torch.Generator().manual_seed(2)
    images = torch.randint(0, 256, (40, 3, 12, 12), dtype=torch.uint8, generator=g)
    labels = torch.arange(40) % 4
    encoder = TinyNet()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    care = dict(optimizer="adam", lr=1e-3, weight_decay=1e-6, schedule="constant")
    kw = care if bn == "train" else dict(optimizer="lars", lr=1.6)  # CARE's / SimSiam's
    recipe = AugmentedProbe(
        epochs=2,
        batch_size=16,
        seeds=2,
        train_augment="simclr" if bn == "train" else "cropflip",
        blur_p=0.5 if bn == "train" else 0.0,
        blur_kernel=3,
        test_resize=14,
        test_crop=12,
        encoder_bn=bn,
        **kw,
    )
    out = augmented_linear_probe(
        encoder,
        images,
        labels,
        images[:20],
        labels[:20],
        num_classes=4,
        mean=torch.full((3,), 0.5),
        std=torch.full((3,), 0.25),
        recipe=recipe,
    )
    assert len(out["accs"]) == 2 and all(0 <= a <= 100 for a in out["accs"])
    after = encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # train-mode BN: on a copy
    assert encoder.training  # the caller's mode is kept
