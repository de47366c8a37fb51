"""Wang et al.'s pretext recipes against the official code (kaotty/Understanding-ESSL, read with
the search tool: ESSL/equivariant_tasks.py and ESSL/verification.py at 3005032, ESSL/models.py
and ESSL/simclr_config.yml at 9c55528, "Equivariant Network/train.py" at 6b8e2d5)."""

import math

import pytest
import torch
import torch.nn.functional as F

from equissl.app.config import build_config
from equissl.app.sweep import load_sweep, sweep_configs
from equissl.app.train import lr_factor, training_optimizer
from equissl.methods import Method, build_method


def _method(presets, *extra: str) -> Method:
    torch.manual_seed(0)
    cfg = build_config(presets, ["backbone.width=4", *extra])
    mean, std = torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.25, 0.3])
    return build_method(cfg, in_channels=3, image_size=8, num_classes=10, mean=mean, std=std)


def _effective_lr(cfg, steps_per_epoch: int):
    o = cfg.optim
    factor = lr_factor(cfg, steps_per_epoch)
    return lambda step: o.lr * o.batch_size / 256 * factor(step)


def _official_pretext_lr(step: int, total: int) -> float:
    """equivariant_tasks.py train(): SGD(lr=0.6) with LambdaLR(get_lr(step, total, 0.6, 1e-3)),
    get_lr = lr_min + (lr_max - lr_min) * 0.5 * (1 + cos(step / total * pi)): the factor is
    itself an lr, so the optimiser's lr is 0.6 x get_lr."""
    return 0.6 * (1e-3 + (0.6 - 1e-3) * 0.5 * (1 + math.cos(step / total * math.pi)))


def test_pretext_paper_runs_the_official_optimiser_and_schedule():
    root, configs = sweep_configs(load_sweep("transformations"), scale="paper")
    cfg = configs[0]
    o = cfg.optim
    assert (o.name, o.nesterov, o.momentum, o.weight_decay) == ("sgd", True, 0.9, 1e-6)
    assert (o.batch_size, o.epochs) == (512, 200)
    steps = 50000 // 512  # drop_last=True
    total = steps * o.epochs
    lr = _effective_lr(cfg, steps)
    for step in (0, 1, 97, 5000, total // 2, total - 1, total):
        assert lr(step) == pytest.approx(_official_pretext_lr(step, total), rel=1e-12, abs=1e-15)
    assert lr(0) == pytest.approx(0.36)
    # mutation check: equissl's earlier pretext (lr 0.1 per 256, 10 warm-up epochs, end 0)
    old = build_config(["cifar10-paper"], ["optim.lr=0.1", "optim.epochs=200"])
    assert _effective_lr(old, steps)(5000) != pytest.approx(_official_pretext_lr(5000, total))


def test_pretext_head_is_linear_relu_linear_without_norm():
    """models.py CIFAR_Network.projector: Linear(512, 2048), ReLU, Linear(2048, K)."""
    head = _method(["pretext"]).terms[0].heads[0].double()
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["Linear", "ReLU", "Linear"]
    assert (head[0].in_features, head[0].out_features, head[2].out_features) == (32, 128, 4)
    full = _method(["pretext"], "backbone.width=64").terms[0].heads[0]
    assert (full[0].in_features, full[0].out_features) == (512, 2048)
    x = torch.randn(5, 32, dtype=torch.float64)
    want = F.relu(x @ head[0].weight.T + head[0].bias) @ head[2].weight.T + head[2].bias
    torch.testing.assert_close(head(x), want, atol=1e-12, rtol=0)
    # mutation check: E-SSL's head (equissl's earlier pretext head) has LayerNorms
    essl = _method(["pretext"], "method.equivariance.0.head_form=essl").terms[0].heads[0]
    assert "LayerNorm" in [type(m).__name__ for m in essl]


def test_online_classifier_trains_in_the_same_optimiser():
    """equivariant_tasks.py: one SGD over model.parameters(), the classifier `model.linear`
    included: its lr, schedule and weight decay are the encoder's."""
    cfg = build_config(["pretext"], ["backbone.width=4"])
    method = _method(["pretext"])
    groups = training_optimizer(cfg, method).param_groups
    assert groups[1]["params"] == list(method.classifier.parameters())
    assert groups[1]["lr"] == groups[0]["lr"] == pytest.approx(0.18 * 512 / 256)
    assert groups[1]["weight_decay"] == groups[0]["weight_decay"] == 1e-6
    # mutation check: equissl's own classifier group (optim.classifier_lr, no weight decay)
    own = build_config(["pretext"], ["backbone.width=4", "method.classifier_optim=own"])
    groups = training_optimizer(own, method).param_groups
    assert (groups[1]["lr"], groups[1]["weight_decay"]) == (own.optim.classifier_lr, 0.0)


def _classifier_grad(*extra: str) -> torch.Tensor:
    method = _method(["pretext"], *extra)  # float32: views and the CE are float32 by design
    images = torch.randint(0, 256, (6, 3, 8, 8), generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    loss, _ = method.loss(images.to(torch.uint8), labels, torch.Generator().manual_seed(2))
    return torch.autograd.grad(loss, method.classifier.weight)[0]


@pytest.mark.parametrize("w", [0.1, 1.0])
def test_signed_class_term_trains_the_classifier_as_verification_py(w):
    """verification.py, method `add`: loss = CE_rot + w CE_cls, one step of the optimiser over
    every parameter (logits not detached): the classifier's gradient is w g, g = dCE_cls/dW.
    Method `eliminate`: loss = CE_rot - w CE_cls, backward, optimizer.step(); then CE_cls
    backward without zero_grad and optimizer_classifier.step(): the classifier moves by -w g,
    then by the accumulated (1 - w) g; one step of the sum is (1 - 2w) g."""
    g = _classifier_grad("method.classifier=detached")  # the online CE alone: g
    signed = ("method.classifier_grad=signed", f"method.class_weight={w}")
    add = _classifier_grad("method.classifier=joint", *signed)
    eliminate = _classifier_grad("method.classifier=eliminate", *signed)
    torch.testing.assert_close(add, w * g, atol=1e-7, rtol=1e-5)
    torch.testing.assert_close(eliminate, (1 - 2 * w) * g, atol=1e-7, rtol=1e-5)
    # mutation check: classifier_grad=online (equissl's earlier behaviour) trains it on g alone
    online = _classifier_grad(
        "method.classifier=eliminate", f"method.class_weight={w}", "method.classifier_grad=online"
    )
    torch.testing.assert_close(online, g, atol=1e-7, rtol=1e-5)
    assert (online - eliminate).abs().max() > 1e-3 * g.abs().max()


def test_class_information_paper_preset_sets_the_signed_class_term():
    root, configs = sweep_configs(load_sweep("class-information"), scale="paper")
    assert all(c.method.classifier_grad == "signed" for c in configs)


def test_random_init_keeps_weights_while_batchnorm_statistics_follow_the_data():
    """equivariant_tasks.py, method `none`: model.train() every step, only optimizer_cls (the
    classifier) steps: the encoder's weights stay at initialisation, its BatchNorm running
    statistics follow the views."""
    root, configs = sweep_configs(load_sweep("transformations"), scale="smoke")
    cfg = next(c for c in configs if c.name == "random-init")
    assert cfg.backbone.frozen and cfg.optim.epochs > 0
    method = _method(["pretext"], "backbone.frozen=true", "method.equivariance.0.weight=0")
    before = {k: v.clone() for k, v in method.backbone.state_dict().items()}
    optimizer = training_optimizer(build_config(["pretext"], ["backbone.width=4"]), method)
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    loss, _ = method.loss(images, torch.arange(6), torch.Generator().manual_seed(0))
    loss.backward()
    optimizer.step()
    after = method.backbone.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all("running" in k or "num_batches" in k for k in moved)
    # mutation check: without backbone.frozen the encoder's weights train
    assert any(p.requires_grad for p in _method(["pretext"]).backbone.parameters())
    assert not any(p.requires_grad for p in method.backbone.parameters())


def test_base_augmentations_paper_scale_runs_the_equivariant_network_recipe():
    """Equivariant Network/train.py: SGD(lr=0.05, momentum 0.9, nesterov, weight_decay 5e-4),
    batch 128, 200 epochs, MultiStepLR([60, 120, 160], gamma=0.2) stepped per epoch; the
    EqResNet with 2x2 max pooling, dropout 0.2, group max-pooled 4,096 features."""
    root, configs = sweep_configs(load_sweep("base-augmentations"), scale="paper")
    by_name = {c.name: c for c in configs}
    cfg = by_name["simclr-eqresnet18"]
    b, o = cfg.backbone, cfg.optim
    assert (b.downsample, b.dropout, b.pool) == ("max", 0.2, "group_max")
    assert (o.nesterov, o.weight_decay, o.batch_size, o.epochs) == (True, 5e-4, 128, 200)
    steps = 50000 // 128 + 1  # drop_last=False
    lr = _effective_lr(cfg, steps)
    for epoch in (0, 59, 60, 119, 120, 159, 160, 199):
        want = 0.05 * 0.2 ** sum(epoch >= m for m in (60, 120, 160))
        assert lr(epoch * steps) == pytest.approx(want, rel=1e-12)
    # their crop is RandomCrop(32) of 32x32 images: the identity; the term's crop keeps all
    term = cfg.method.equivariance[0]
    assert (term.scale_min, term.scale_max, term.size_ratio) == (1.0, 1.0, 1.0)
    # equissl's exact invariant design stays as its own run
    inv = by_name["none-eqresnet18-invariant"].backbone
    assert (inv.downsample, inv.dropout, inv.pool) == ("avg", 0.0, "mean")


def test_a_whole_image_crop_is_the_identity_so_crop_flip_is_flip_only():
    """Equivariant Network/train.py `sup`: RandomCrop(32) of a 32x32 image, then a flip."""
    from equissl.methods.build import make_augment

    cfg = build_config(["pretext"], ["augment.flip_p=0"]).augment
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    views = make_augment("cropflip", 32, (1.0, 1.0), cfg)(images, torch.Generator().manual_seed(0))
    torch.testing.assert_close(views, images.float() / 255, atol=1e-6, rtol=0)
    # mutation check: equissl's earlier resized crop of scale (0.2, 1) moves pixels
    crops = make_augment("cropflip", 32, (0.2, 1.0), cfg)(images, torch.Generator().manual_seed(0))
    assert (crops - images.float() / 255).abs().max() > 0.1


@pytest.mark.parametrize(
    "extra",
    [
        ["backbone.dropout=1.0"],
        ["backbone.pool=group_max", "method.equivariance.0.size_ratio=0.5"],
        ["backbone.downsample=mean"],
        ["method.classifier_grad=frozen"],
    ],
)
def test_bad_wang_settings_raise_one_line_config_errors(extra):
    from equissl.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        build_config(["pretext"], ["backbone=eqresnet18", *extra])
    assert "\n" not in str(info.value)
