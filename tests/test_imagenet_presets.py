"""E-SSL's ImageNet presets against the official code (rdangovs/essl, read with read_file):

- `imagenet/simclr/main.py` at 359b27c: argparse defaults (epochs 100, batch 4096, lr 4.8
  unscaled, weight decay 1e-6, --rotation 0.4, --scale 0.05,0.14), `SimCLR.__init__` (projector
  sizes [2048, 2048, 2048, 128], Linear(bias=False) + BatchNorm1d after every layer),
  `infoNCE(temperature=0.2)`, `LARS(eta=0.001)`, `adjust_learning_rate` (10 warm-up epochs, end
  0.001 x base), `Transform`; `imagenet/simclr/utils.py` at 9957024 (`GaussianBlur`, sigma
  U(0.1, 2.0); `Solarization`).
- `imagenet/simsiam/main.py` at 29ef4e0: batch 512, lr 0.05 x batch / 256, momentum 0.9,
  weight decay 1e-4, `adjust_learning_rate` (cosine, no warm-up, to 0), --crop 96, the same
  `Transform`; `simsiam/builder.py` at 29ef4e0 (projector 2048-2048-2048, last BN without
  affine; predictor 2048-512-2048; rotation head 2048-2048-2048-256(LN)-4); `run.sh` and
  README at 29ef4e0 / 359b27c: --rotation 0.08. Its `linear_probe.py` at 29ef4e0: LARC over
  SGD lr 0.1 x 4096/256, momentum 0.9, no weight decay, cosine, batch 4096, 90 epochs.
- `imagenet/barlowtwins/main.py` at 359b27c: batch 4096, --learning-rate-weights 0.2 x
  batch / 256, weight decay 1e-6, --lambd 0.0051, --projector 8192-8192-8192 (last Linear
  without bias or BN; a BatchNorm1d(affine=False) on z in the loss), loss on_diag + lambd x
  off_diag (unscaled), `LARS(eta=0.001)`, 10 warm-up epochs, end 0.001 x base; rotation head
  2048-2048-2048-256(LN)-4; README at 359b27c: --rotation 8. Its `linear_probe.py` at eb2b0a7:
  SGD lr 0.3, momentum 0.9, weight decay 1e-6, cosine, batch 256, 100 epochs.
- `imagenet/simclr/linear_probe.py` at 9957024: SGD lr 0.1, momentum 0.9, weight decay 1e-6, a
  CosineAnnealingLR that is never stepped (constant), batch 256, 100 epochs. All three probes:
  RandomResizedCrop(224) (bilinear) + flip, test Resize(256) + CenterCrop(224), frozen encoder.
"""

import pytest
import torch
from omegaconf import OmegaConf

from equissl.app.config import build_config
from equissl.methods.build import build_invariance
from equissl.methods.invariance import BarlowTwins, SimCLR, SimSiam
from equissl.models import projector, transformation_head
from equissl.objectives import barlow_twins_loss

VIEWS = {  # every Transform: RandomResizedCrop(224, BICUBIC) (scale 0.08-1), flip 0.5, jitter
    # (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale 0.2, GaussianBlur p 1.0 / 0.1, Solarization 0 / 0.2;
    # transform_rotation: RandomResizedCrop(96, scale=(0.05, 0.14)), bilinear, blur p 0.1
    "augment.size": 224,
    "augment.scale_min": 0.08,
    "augment.scale_max": 1.0,
    "augment.flip_p": 0.5,
    "augment.jitter": [0.4, 0.4, 0.2, 0.1],
    "augment.jitter_p": 0.8,
    "augment.gray_p": 0.2,
    "augment.interpolation": "bicubic",
    "augment.blur_p": [1.0, 0.1],
    "augment.blur_sigma": [0.1, 2.0],
    "augment.solarize_p": [0.0, 0.2],
    "backbone.name": "resnet50",
    "backbone.stem": "imagenet",
    "backbone.zero_init_residual": True,  # torchvision resnet50(zero_init_residual=True)
    "method.view_passes": "separate",
    "trainer.sync_batchnorm": True,
    "eval.linear.protocol": "augmented",  # the official linear probe is run at paper scale
}
ROTATION = {  # rotate_images: all four rotations of the rotation crop
    "method.equivariance.0.transform": "rotation",
    "method.equivariance.0.expand": True,
    "method.equivariance.0.size": 96,
    "method.equivariance.0.scale_min": 0.05,
    "method.equivariance.0.scale_max": 0.14,
    "method.equivariance.0.head_hidden": 2048,
    "method.equivariance.0.head_second_relu": True,
    "augment.term_blur_p": 0.1,
    "augment.term_solarize_p": 0.0,
}
PROBE = {
    "eval.linear.augmented.momentum": 0.9,
    "eval.linear.augmented.seeds": 1,
    "eval.linear.augmented.drop_last": False,
    "eval.linear.augmented.train_augment": "cropflip",
    "eval.linear.augmented.scale_min": 0.08,
    "eval.linear.augmented.interpolation": "bilinear",
    "eval.linear.augmented.test_resize": 256,
    "eval.linear.augmented.test_crop": 224,
    "eval.linear.augmented.encoder_bn": "eval",
}
LARS_4096 = {  # SimCLR's and Barlow Twins' optimiser, schedule, batch and epochs
    "optim.name": "lars",
    "optim.lars_eta": 0.001,
    "optim.end_lr": 0.001,
    "optim.warmup_epochs": 10,
    "optim.weight_decay": 1e-6,
    "optim.batch_size": 4096,
    "optim.epochs": 100,
}
SIMCLR = {
    **VIEWS,
    **PROBE,
    "eval.linear.augmented.optimizer": "sgd",
    "eval.linear.augmented.lr": 0.1,
    "eval.linear.augmented.weight_decay": 1e-6,
    "eval.linear.augmented.schedule": "constant",
    "eval.linear.augmented.epochs": 100,
    "eval.linear.augmented.batch_size": 256,
    "method.invariance": "simclr",
    "method.temperature": 0.2,
    "method.negatives": "other_view",
    "method.proj_hidden": 2048,
    "method.proj_dim": 128,
    "method.proj_layers": 3,
    "method.proj_last_affine": True,
    **LARS_4096,
}
SIMSIAM = {
    **VIEWS,
    **PROBE,
    "eval.linear.augmented.optimizer": "lars",
    "eval.linear.augmented.lr": 0.1 * 4096 / 256,
    "eval.linear.augmented.weight_decay": 0.0,
    "eval.linear.augmented.schedule": "cosine",
    "eval.linear.augmented.epochs": 90,
    "eval.linear.augmented.batch_size": 4096,
    "method.invariance": "simsiam",
    "method.proj_hidden": 2048,
    "method.proj_dim": 2048,
    "method.proj_layers": 3,
    "method.proj_last_affine": False,
    "method.pred_hidden": 512,
    "optim.name": "sgd",
    "optim.momentum": 0.9,
    "optim.weight_decay": 1e-4,
    "optim.warmup_epochs": 0,
    "optim.end_lr": 0.0,
    "optim.batch_size": 512,
    "optim.epochs": 100,
}
BARLOW = {
    **VIEWS,
    **PROBE,
    "eval.linear.augmented.optimizer": "sgd",
    "eval.linear.augmented.lr": 0.3,
    "eval.linear.augmented.weight_decay": 1e-6,
    "eval.linear.augmented.schedule": "cosine",
    "eval.linear.augmented.epochs": 100,
    "eval.linear.augmented.batch_size": 256,
    "method.invariance": "barlow_twins",
    "method.proj_hidden": 8192,
    "method.proj_dim": 8192,
    "method.proj_layers": 3,
    "method.barlow_lambda": 0.0051,
    "method.barlow_scale": 1.0,
    **LARS_4096,
}
# Peak lr as equissl computes it (lr x batch / 256) against the official peak.
PEAK_LR = {"simclr": 4.8, "simsiam": 0.05 * 512 / 256, "barlow_twins": 0.2 * 4096 / 256}
PRESETS = {
    "imagenet-simclr": (SIMCLR, None),
    "imagenet-esimclr": (SIMCLR, (0.4, 128)),
    "imagenet-simsiam": (SIMSIAM, None),
    "imagenet-esimsiam": (SIMSIAM, (0.08, 256)),
    "imagenet-barlow_twins": (BARLOW, None),
    "imagenet-ebarlow_twins": (BARLOW, (8.0, 256)),
}


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_has_the_official_values(name):
    official, rotation = PRESETS[name]
    cfg = build_config([name])
    want = dict(official)
    if rotation is None:
        assert len(cfg.method.equivariance) == 0
    else:
        weight, bottleneck = rotation
        want.update(ROTATION)
        want["method.equivariance.0.weight"] = weight
        want["method.equivariance.0.head_bottleneck"] = bottleneck
    got = {
        k: OmegaConf.to_object(v) if OmegaConf.is_config(v) else v
        for k, v in ((k, OmegaConf.select(cfg, k)) for k in want)
    }
    wrong = {k: (got[k], v) for k, v in want.items() if got[k] != pytest.approx(v)}
    assert not wrong, wrong
    peak = cfg.optim.lr * cfg.optim.batch_size / 256
    assert peak == pytest.approx(PEAK_LR[cfg.method.invariance], rel=1e-12)


def _layers(module):
    """(type, in, out, bias) for Linear; (type, features, affine) for norms; (type,) else."""
    rows = []
    for m in module:
        if isinstance(m, torch.nn.Linear):
            rows.append(("Linear", m.in_features, m.out_features, m.bias is not None))
        elif isinstance(m, (torch.nn.BatchNorm1d, torch.nn.LayerNorm)):
            size = m.num_features if isinstance(m, torch.nn.BatchNorm1d) else m.normalized_shape[0]
            affine = m.affine if isinstance(m, torch.nn.BatchNorm1d) else True
            rows.append((type(m).__name__, size, affine))
        else:
            rows.append((type(m).__name__,))
    return rows


def _count(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _branch(name, cls):
    with torch.device("meta"):  # no memory for the 151M-parameter Barlow Twins projector
        branch = build_invariance(build_config([name]).method, 2048, backbone=None)
    assert isinstance(branch, cls)
    return branch


def test_simclr_projector_is_the_official_one():
    """`SimCLR.__init__`: sizes [2048, 2048, 2048, 128]; Linear(no bias)-BN-ReLU twice, then
    Linear(2048, 128, no bias)-BatchNorm1d(128) (affine, torch's default)."""
    proj = _branch("imagenet-esimclr", SimCLR).projector
    block = [("Linear", 2048, 2048, False), ("BatchNorm1d", 2048, True), ("ReLU",)]
    want = [*block, *block, ("Linear", 2048, 128, False), ("BatchNorm1d", 128, True)]
    assert _layers(proj) == want
    assert _count(proj) == 2 * 2048 * 2048 + 2048 * 128 + 2 * 2 * 2048 + 2 * 128  # 8,659,200
    # mutation check: the previous projector (E-SSL's CIFAR one scaled: 2048-8192-8192, plain
    # last BN) is another architecture
    previous = _layers(projector(2048, 8192, 8192))
    assert previous != want and len(previous) == 5


def test_simsiam_projector_and_predictor_are_the_official_ones():
    """builder.py: projector Linear(2048, 2048, no bias)-BN-ReLU twice, then Linear(2048, 2048)
    with its bias frozen (`requires_grad = False`: a constant, which the affine-free BN removes)
    -BatchNorm1d(2048, affine=False); predictor Linear(2048, 512, no bias)-BN-ReLU-
    Linear(512, 2048)."""
    branch = _branch("imagenet-esimsiam", SimSiam)
    block = [("Linear", 2048, 2048, False), ("BatchNorm1d", 2048, True), ("ReLU",)]
    want = [*block, *block, ("Linear", 2048, 2048, False), ("BatchNorm1d", 2048, False)]
    assert _layers(branch.projector) == want
    assert _count(branch.projector) == 3 * 2048 * 2048 + 2 * 2 * 2048  # trainable: 12,591,104
    pred = [("Linear", 2048, 512, False), ("BatchNorm1d", 512, True), ("ReLU",)]
    assert _layers(branch.predictor) == [*pred, ("Linear", 512, 2048, True)]
    assert _count(branch.predictor) == 2048 * 512 + 2 * 512 + 512 * 2048 + 2048
    # mutation check: the CIFAR recipe's predictor at d = 2048 has a 2048-wide hidden layer
    assert _layers(_branch("esimsiam", SimSiam).predictor)[0] == ("Linear", 8192, 2048, False)


def test_barlow_twins_projector_and_unscaled_loss_are_the_official_ones():
    """main.py: sizes [2048, 8192, 8192, 8192]; Linear(no bias)-BN-ReLU twice, then
    Linear(8192, 8192, no bias); loss: c = bn(z1).T bn(z2) / N with BatchNorm1d(affine=False),
    on_diag = sum (c_ii - 1)^2, off_diag = sum_{i != j} c_ij^2, loss = on_diag + lambd off_diag.
    equissl's last Linear keeps a bias, which that standardisation removes exactly."""
    proj = _branch("imagenet-ebarlow_twins", BarlowTwins).projector
    block = [("BatchNorm1d", 8192, True), ("ReLU",)]
    want = [("Linear", 2048, 8192, False), *block, ("Linear", 8192, 8192, False), *block]
    assert _layers(proj) == [*want, ("Linear", 8192, 8192, True)]
    official = 2048 * 8192 + 2 * 8192 * 8192 + 2 * 2 * 8192  # 151,027,712
    assert _count(proj) == official + 8192  # + the cancelled bias

    cfg = build_config(["imagenet-ebarlow_twins"]).method
    g = torch.Generator().manual_seed(0)
    z1, z2 = (torch.randn(64, 16, generator=g, dtype=torch.float64) for _ in range(2))

    def bn(z):  # BatchNorm1d(affine=False) in training mode: biased variance, eps 1e-5
        return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5)

    c = bn(z1).T @ bn(z2) / 64
    off = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    want_loss = (torch.diagonal(c) - 1).pow(2).sum() + 0.0051 * off
    got = barlow_twins_loss(z1, z2, cfg.barlow_lambda, cfg.barlow_scale)
    assert float(got) == pytest.approx(float(want_loss), rel=1e-5)  # the loss runs in float32
    bias = torch.randn(16, generator=g, dtype=torch.float64)
    assert float(barlow_twins_loss(z1 + bias, z2, cfg.barlow_lambda, cfg.barlow_scale)) == (
        pytest.approx(float(got), rel=1e-5)
    )
    # mutation check: equissl's CIFAR E-Barlow Twins (0.1 x BT + 0.4 x CE) weighs the rotation
    # term 4 times the loss where the official code weighs it 8 times
    cifar = build_config(["ebarlow_twins"]).method
    assert cifar.equivariance[0].weight / cifar.barlow_scale == pytest.approx(4.0)
    assert cfg.equivariance[0].weight / cfg.barlow_scale == pytest.approx(8.0)


@pytest.mark.parametrize("name", ["imagenet-esimsiam", "imagenet-ebarlow_twins"])
def test_simsiam_and_barlow_rotation_heads_have_a_256_bottleneck(name):
    """builder.py / barlowtwins main.py `rotation_projector`: Linear(2048, 2048)-LN-ReLU-
    Linear(2048, 2048)-LN-ReLU-Linear(2048, 256)-LN(256)-Linear(256, 4)."""
    term = build_config([name]).method.equivariance[0]
    head = transformation_head(
        2048, term.head_hidden, 4, term.head_second_relu, term.head_bottleneck
    )
    block = [("LayerNorm", 2048, True), ("ReLU",)]
    want = [("Linear", 2048, 2048, True), *block, ("Linear", 2048, 2048, True), *block]
    want += [("Linear", 2048, 256, True), ("LayerNorm", 256, True), ("Linear", 256, 4, True)]
    assert _layers(head) == want
    n = 2 * (2048 * 2048 + 2048) + 2 * 2 * 2048 + 2048 * 256 + 256 + 2 * 256 + 256 * 4 + 4
    assert _count(head) == n
    # mutation check: E-SimCLR's 128 bottleneck is another head
    assert build_config(["imagenet-esimclr"]).method.equivariance[0].head_bottleneck == 128
