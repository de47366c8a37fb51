"""CARE's paper presets (configs/papers/care-*-paper[-baseline].yaml) hold the official recipe.

Source: Sharut/CARE, commit 28718be429cffbd0375903cc7534a0528d0e9502:
cifar10_cifar100_stl10/scripts/{cifar10,cifar100,stl10}.sh and main.py's argparse defaults
(Adam, lr 1e-3, weight decay 1e-6, no schedule, batch 256, 400 epochs, temperature 0.5),
model.py (ResNet-50, 3x3 stride-1 conv1 without max-pool; g = Linear(2048, 512, no bias)-BN-
ReLU-Linear(512, 128)), dataset.py (RandomResizedCrop(32) at the default scale 0.08-1, jitter
0.4/0.4/0.4/0.1 p 0.8, grey 0.2, Gaussian blur p 0.5 with kernel int(0.1 x 32) = 3 and sigma
0.1-2, STL-10 at 32x32 on train+unlabeled), utils.py (get_optimizer, adjust_learning_rate,
equivariance_loss); imagenet100/scripts/{simclr_v1,moco_v1}.sh and main.py (ResNet-50, lr 0.4,
batch 256, 200 epochs, --cos, SGD momentum 0.9, weight decay 1e-4, T 0.2, MoCo m 0.99 and K
65536, weight 0.005 with 4 splits per GPU over 128/4 images, blur kernel 5), model/builder.py
(fc = Linear(2048, 2048)-ReLU-Linear(2048, 128)).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from equissl.app.config import build_config, flat_settings
from equissl.app.train import lr_factor, training_optimizer
from equissl.methods import build_method
from equissl.objectives import care_loss

CIFAR_RECIPE = {
    "backbone.name": "resnet50",
    "backbone.stem": "cifar",
    "backbone.width": 64,
    "method.invariance": "simclr",
    "method.temperature": 0.5,
    "method.negatives": "both_views",
    "method.view_passes": "separate",
    "method.proj_norm": "hidden",
    "method.proj_hidden": 512,
    "method.proj_dim": 128,
    "optim.batch_size": 256,
    "optim.epochs": 400,
    "augment.scale_min": 0.08,
    "augment.scale_max": 1.0,
    "augment.flip_p": 0.5,
    "augment.jitter": [0.4, 0.4, 0.4, 0.1],
    "augment.jitter_p": 0.8,
    "augment.gray_p": 0.2,
    "augment.blur_p": [0.5, 0.5],
    "augment.blur_kernel": 3,
    "augment.blur_sigma": [0.1, 2.0],
    "augment.term_blur_p": 0.5,  # dataset.get_transforms: the CARE copies are blurred as well
    "eval.knn.k": 200,
    "eval.knn.temperature": 0.5,
    # linear.py: Adam(lr 1e-3, weight decay 1e-6), no schedule, 100 epochs, batch 512, the
    # training augmentation (with blur), net.train() while the probe trains
    "eval.linear.protocol": "augmented",
    "eval.linear.augmented.optimizer": "adam",
    "eval.linear.augmented.lr": 0.001,
    "eval.linear.augmented.weight_decay": 1e-6,
    "eval.linear.augmented.schedule": "constant",
    "eval.linear.augmented.epochs": 100,
    "eval.linear.augmented.batch_size": 512,
    "eval.linear.augmented.train_augment": "simclr",
    "eval.linear.augmented.blur_p": 0.5,
    "eval.linear.augmented.blur_kernel": 3,
    "eval.linear.augmented.test_resize": None,
    "eval.linear.augmented.test_crop": None,
    "eval.linear.augmented.encoder_bn": "train",
}
ADAM = {
    "optim.name": "adam",
    "optim.lr": 0.001,
    "optim.weight_decay": 1e-6,
    "optim.schedule": "constant",
}
IMAGENET_RECIPE = {
    "data.name": "imagefolder",
    "backbone.name": "resnet50",
    "backbone.stem": "imagenet",
    "method.temperature": 0.2,
    "method.proj_norm": "none",
    "method.proj_hidden": 2048,
    "method.proj_dim": 128,
    "method.view_passes": "separate",
    "optim.name": "sgd",
    "optim.momentum": 0.9,
    "optim.lr": 0.4,
    "optim.weight_decay": 1e-4,
    "optim.schedule": "warmup_cosine",
    "optim.warmup_epochs": 0,
    "optim.end_lr": 0.0,
    "optim.batch_size": 256,
    "optim.epochs": 200,
    "augment.size": 224,
    "augment.scale_min": 0.2,
    "augment.jitter": [0.4, 0.4, 0.4, 0.1],
    "augment.blur_p": [0.5, 0.5],
    "augment.blur_kernel": 5,
    "augment.blur_sigma": [0.1, 2.0],
    "augment.term_blur_p": 0.5,  # main.py input_transforms: blur p 0.5 on the CARE copies
    # main_lincls.py: SGD lr 30, momentum 0.9, weight decay 1e-4, --schedule 60 80, 100
    # epochs, RandomResizedCrop(224) + flip; Resize(256) + CenterCrop(224); model.eval()
    "eval.linear.protocol": "augmented",
    "eval.linear.augmented.optimizer": "sgd",
    "eval.linear.augmented.lr": 30.0,
    "eval.linear.augmented.weight_decay": 1e-4,
    "eval.linear.augmented.schedule": "multistep",
    "eval.linear.augmented.milestones": [60, 80],
    "eval.linear.augmented.epochs": 100,
    "eval.linear.augmented.train_augment": "cropflip",
    "eval.linear.augmented.test_resize": 256,
    "eval.linear.augmented.test_crop": 224,
    "eval.linear.augmented.encoder_bn": "eval",
}
SIMCLR_IN = {"method.invariance": "simclr", "method.negatives": "both_views"}
MOCO_IN = {"method.invariance": "moco", "method.moco_momentum": 0.99, "method.moco_queue": 65536}

# preset: (shared recipe, the official CARE weight, its chunks (splits) in a batch of 256)
OFFICIAL = {
    "care-cifar10-paper": ({**CIFAR_RECIPE, **ADAM, "data.name": "cifar10"}, 0.03, 16),
    "care-cifar100-paper": ({**CIFAR_RECIPE, **ADAM, "data.name": "cifar100"}, 0.001, 4),
    "care-stl10-paper": (
        {
            **CIFAR_RECIPE,
            "data.name": "stl10",
            "data.unlabeled": True,
            "data.size": 32,
            "optim.name": "sgd",
            "optim.momentum": 0.0,
            "optim.lr": 0.06,
            "optim.weight_decay": 5e-4,
            "optim.schedule": "warmup_cosine",
            "optim.warmup_epochs": 10,
            "optim.end_lr": 0.0,
        },
        0.01,
        8,
    ),
    # 4 splits per GPU of 32 images (128 over 4 GPUs): chunks of 8, 32 of them in 256.
    "care-imagenet100-paper": ({**IMAGENET_RECIPE, **SIMCLR_IN}, 0.005, 32),
    "care-moco-imagenet100-paper": ({**IMAGENET_RECIPE, **MOCO_IN}, 0.005, 32),
}


def official_equivariance_loss(z1, z2, num_chunks):
    """utils.py equivariance_loss, from its maths, in float64: per chunk of m images, the mean
    over rows of 2 x the squared norm of the row's off-diagonal Gram differences; the chunks'
    mean (the embeddings are the L2-normalised projector outputs, model.py forward)."""
    z1, z2 = F.normalize(z1.double(), dim=1), F.normalize(z2.double(), dim=1)
    m = z1.shape[0] // num_chunks
    total = 0.0
    for c in range(num_chunks):
        a, b = z1[c * m : (c + 1) * m], z2[c * m : (c + 1) * m]
        rows = []
        for i in range(m):
            diff = [float(a[i] @ a[j] - b[i] @ b[j]) for j in range(m) if j != i]
            rows.append(2 * sum(d * d for d in diff))
        total += sum(rows) / m
    return total / num_chunks


def _select(tree, key):
    for part in key.split("."):
        tree = tree[part]
    return tree


@pytest.mark.parametrize("preset", sorted(OFFICIAL))
def test_paper_presets_hold_the_official_values(preset):
    recipe, _, chunks = OFFICIAL[preset]
    for name in (preset, f"{preset}-baseline"):
        cfg = OmegaConf.to_container(build_config([name]))
        assert {k: _select(cfg, k) for k in recipe} == recipe, name
    care = flat_settings(build_config([preset]))
    assert care["method.equivariance.0.mode"] == "care"
    assert care["method.equivariance.0.chunks"] == chunks
    assert care["method.equivariance.0.pair_per"] == "batch"
    assert build_config([f"{preset}-baseline"]).method.equivariance == []


@pytest.mark.parametrize("preset", sorted(OFFICIAL))
def test_care_weight_equals_the_official_weighted_loss(preset):
    """official weight x equivariance_loss == preset weight x care_loss on the preset's batch;
    the old `care` weight (0.9, CIFAR-10's conversion) fails every other preset."""
    _, official_weight, chunks = OFFICIAL[preset]
    cfg = build_config([preset])
    term = cfg.method.equivariance[0]
    n = cfg.optim.batch_size
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(n, 8, generator=g), torch.randn(n, 8, generator=g)
    ref = official_weight * official_equivariance_loss(z1, z2, chunks)
    assert term.weight * care_loss(z1, z2, term.chunks).item() == pytest.approx(ref, rel=1e-4)
    if preset != "care-cifar10-paper":
        assert 0.9 * care_loss(z1, z2, term.chunks).item() != pytest.approx(ref, rel=1e-2)


def _method(preset, width=64):
    cfg = build_config([preset], [f"backbone.width={width}"])
    mean, std = torch.zeros(3), torch.ones(3)
    return cfg, build_method(cfg, in_channels=3, image_size=32, num_classes=10, mean=mean, std=std)


@pytest.mark.parametrize(
    ("preset", "layers"),
    [
        # model.py g: Linear(2048, 512, bias=False), BatchNorm1d(512), ReLU, Linear(512, 128)
        (
            "care-cifar10-paper",
            [
                ("Linear", 2048, 512, False),
                ("BatchNorm1d", 512),
                ("ReLU",),
                ("Linear", 512, 128, True),
            ],
        ),
        # builder.py: fc = Linear(2048, 2048), ReLU, Linear(2048, 128)
        (
            "care-moco-imagenet100-paper",
            [("Linear", 2048, 2048, True), ("ReLU",), ("Linear", 2048, 128, True)],
        ),
    ],
)
def test_projector_is_the_official_head(preset, layers):
    """The old projector (E-SSL's Linear-BN-ReLU-Linear-BN) fails both."""
    _, method = _method(preset)

    def describe(module):
        if isinstance(module, nn.Linear):
            return ("Linear", module.in_features, module.out_features, module.bias is not None)
        if isinstance(module, nn.BatchNorm1d):
            return ("BatchNorm1d", module.num_features)
        return (type(module).__name__,)

    assert [describe(m) for m in method.invariance.projector] == layers
    if preset.startswith("care-moco"):
        key = [describe(m) for m in method.invariance.key_projector]
        assert key == layers


def official_cosine_lr(step, epoch, steps_per_epoch, lr, epochs, warmup_epochs):
    """utils.py adjust_learning_rate(type='cosine'), called every step with the global step."""
    max_steps, warmup_steps = epochs * steps_per_epoch, warmup_epochs * steps_per_epoch
    if step < warmup_steps:
        return lr * step / warmup_steps
    q = 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (max_steps - warmup_steps)))
    return lr * q


def official_imagenet_lr(epoch, lr, epochs):
    """imagenet100/main.py adjust_learning_rate with --cos: once per epoch."""
    return lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


@pytest.mark.parametrize(
    "preset", ["care-cifar10-paper", "care-stl10-paper", "care-imagenet100-paper"]
)
def test_optimiser_and_schedule_are_the_official_ones(preset):
    cfg, method = _method(preset, width=4)
    o = cfg.optim
    opt = training_optimizer(cfg, method)
    group = opt.param_groups[0]
    lr = o.lr * o.batch_size / 256
    spe = 3
    factor = lr_factor(cfg, spe)
    if preset == "care-cifar10-paper":  # main.py: Adam(lr 1e-3, weight decay 1e-6), no schedule
        assert isinstance(opt, torch.optim.Adam)
        assert (group["lr"], group["weight_decay"], group["betas"]) == (1e-3, 1e-6, (0.9, 0.999))
        assert all(lr * factor(s) == 1e-3 for s in range(0, o.epochs * spe, 97))
    elif preset == "care-stl10-paper":  # get_optimizer('SGD', lr, weight_decay): momentum 0
        assert isinstance(opt, torch.optim.SGD)
        assert (group["lr"], group["weight_decay"], group["momentum"]) == (0.06, 5e-4, 0.0)
        for step in range(0, o.epochs * spe, 7):
            ref = official_cosine_lr(step, step // spe + 1, spe, 0.06, 400, 10)
            assert lr * factor(step) == pytest.approx(ref, abs=1e-12)
    else:  # SGD(lr 0.4, momentum 0.9, weight decay 1e-4), cosine per epoch
        assert isinstance(opt, torch.optim.SGD)
        assert (group["lr"], group["weight_decay"], group["momentum"]) == (0.4, 1e-4, 0.9)
        for epoch in range(o.epochs):  # equal at each epoch's first step (per step between)
            ref = official_imagenet_lr(epoch, 0.4, 200)
            assert lr * factor(epoch * spe) == pytest.approx(ref, abs=1e-12)


def test_care_copies_take_one_backbone_pass_each_with_separate_view_passes():
    """main.py: net(batch_1), net(batch_2), so each copy has its own BatchNorm batch
    statistics; a joint pass (the previous behaviour) differs."""
    torch.manual_seed(0)
    cfg, method = _method("care-cifar10-paper", width=4)
    term = method.terms[0]
    views = torch.rand(2 * 32, 3, 32, 32)
    h = method.encode_for(term, views)
    x = method.normalize(views)
    torch.testing.assert_close(h, torch.cat([method.backbone(x[:32]), method.backbone(x[32:])]))
    assert not torch.allclose(h, method.backbone(x), atol=1e-4)
