"""Every invariance method and every transformation trains: on a fixed batch with fixed views,
30 optimiser steps lower the loss (a broken gradient path or a constant loss fails)."""

import pytest
import torch

from equissl.app.config import build_config
from equissl.methods import build_method
from equissl.transforms import TRANSFORMS

SIZE = 12


def _train(presets: list[str], overrides: list[str], steps: int = 30) -> list[float]:
    torch.manual_seed(0)
    cfg = build_config(presets, ["backbone.width=4", *overrides])
    mean, std = torch.full((3,), 0.5), torch.full((3,), 0.25)
    method = build_method(cfg, in_channels=3, image_size=SIZE, num_classes=4, mean=mean, std=std)
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (16, 3, SIZE, SIZE), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 4, (16,), generator=g)
    opt = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=2e-3)
    losses = []
    for step in range(steps):
        loss, metrics = method.loss(images, labels, torch.Generator().manual_seed(7))
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_step(step / steps)
        losses.append(float(metrics["loss"]))
    return losses


def _decreases(losses: list[float]) -> bool:
    return sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 1e-3


@pytest.mark.parametrize(
    "preset", ["simclr", "simsiam", "byol", "barlow_twins", "vicreg", "esimsiam", "ebyol"]
)
def test_every_invariance_method_trains(preset):
    losses = _train([preset], ["optim.name=sgd"])
    assert all(map(torch.isfinite, torch.tensor(losses)))
    assert _decreases(losses), losses


@pytest.mark.parametrize("transform", [*TRANSFORMS, "rotation+hflip"])
def test_every_transformation_trains_as_a_pretext_task(transform):
    losses = _train(["pretext"], [f"method.equivariance.0.transform={transform}"])
    assert _decreases(losses), losses


@pytest.mark.parametrize(
    "overrides",
    [
        ["method.equivariance.0.transform=rotation+vflip", "method.equivariance.0.heads=separate"],
        ["method.equivariance.0.transform=jigsaw", "method.equivariance.0.mode=relative"],
        [
            "method.equivariance.0.transform=crop+jitter",
            "method.equivariance.0.mode=regress",
            "method.equivariance.0.augment=simclr",
        ],
        ["method.classifier=joint", "method.class_weight=0.5"],
    ],
    ids=["separate-heads", "relative", "regress", "joint-class"],
)
def test_term_modes_train(overrides):
    assert _decreases(_train(["pretext"], overrides))


@pytest.mark.parametrize(
    ("presets", "overrides", "metric"),
    [
        (["care"], ["method.equivariance.0.chunks=4"], "augment_care_loss"),
        (["care-only"], ["method.equivariance.0.chunks=4"], "augment_care_uniformity"),
        (
            ["pretext"],
            [
                "method.equivariance.0.mode=care",
                "method.equivariance.0.uniformity=1.0",
                "method.equivariance.0.chunks=4",
            ],
            "rotation_care_loss",
        ),
    ],
)
def test_care_terms_train(presets, overrides, metric):
    losses = _train(presets, overrides)
    assert all(map(torch.isfinite, torch.tensor(losses)))
    assert _decreases(losses), losses
    # The CARE term alone sends a gradient to the backbone and is logged under its name.
    cfg = build_config(presets, ["backbone.width=4", *overrides])
    ones = torch.ones(3)
    method = build_method(cfg, in_channels=3, image_size=SIZE, num_classes=4, mean=ones, std=ones)
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (16, 3, SIZE, SIZE), dtype=torch.uint8, generator=g)
    views = method.make_views(images, torch.Generator().manual_seed(2))
    term = method.terms[0]
    loss, metrics = term.loss(method.encode(views["0"]), views["0/targets"])
    assert metric in metrics and float(metrics[f"{term.name}_loss"]) > 0  # Gram mismatch
    loss.backward()
    grads = [p.grad for p in method.backbone.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize(
    "presets,group",
    [
        (["simclr"], "c4"),
        (["esimclr"], "c4"),
        (["esimclr"], "d4"),
        (["simsiam"], "c4"),
        (["byol"], "c4"),
        (["barlow_twins"], "c4"),
        (["vicreg"], "c4"),
        (["pretext"], "d4"),
        (["care"], "c4"),
    ],
)
def test_every_method_trains_with_an_eqresnet(presets, group):
    overrides = ["backbone=eqresnet18", f"group={group}", "backbone.fields=2"]
    if presets == ["care"]:
        overrides.append("method.equivariance.0.chunks=4")
    losses = _train(presets, overrides, steps=20)
    assert all(map(torch.isfinite, torch.tensor(losses)))
    assert _decreases(losses), losses


def test_eqresnet_rotation_head_reads_the_orientation_features():
    cfg = build_config(["esimclr"], ["backbone=eqresnet18", "group=c4", "backbone.fields=2"])
    ones = torch.ones(3)
    method = build_method(cfg, in_channels=3, image_size=SIZE, num_classes=4, mean=ones, std=ones)
    method.eval()
    assert cfg.backbone.name == "eqresnet18" and method.backbone.group.name == "c4"  # short keys
    assert method.backbone.num_features == 16
    assert method.terms[0].heads[0][0].in_features == 16 * 4  # features x |G|
    x = torch.rand(2, 3, SIZE, SIZE)
    turned = torch.rot90(x, 1, dims=(-2, -1))
    term = method.terms[0]
    # the invariant representation cannot tell the rotation; what the head reads can
    assert torch.allclose(method.encode(turned), method.encode(x), atol=1e-5)
    h, h_turned = method.encode_for(term, x), method.encode_for(term, turned)
    assert not torch.allclose(h, h_turned, atol=1e-3)
    assert torch.allclose(h_turned.view(2, 16, 4), h.view(2, 16, 4).roll(1, -1), atol=1e-5)


@pytest.mark.parametrize("care", [False, True], ids=["moco", "moco+care"])
def test_moco_trains(care):
    """MoCo-v2 (and MoCo-v2 + CARE, CARE's ImageNet-100 pairing): a queue of one batch, so
    from step 1 the negatives are real keys; step 0 contrasts against the random initial
    queue and is left out."""
    term = (
        [
            "method.equivariance=[{transform: augment, mode: care, chunks: 4, weight: 0.5, "
            "pair_per: batch, size_ratio: 1.0}]"
        ]
        if care
        else []
    )
    overrides = ["method.moco_queue=16", "optim.batch_size=16", "method.moco_momentum=0.9"]
    losses = _train(["moco"], [*overrides, *term])
    assert all(map(torch.isfinite, torch.tensor(losses)))
    assert _decreases(losses[1:]), losses
