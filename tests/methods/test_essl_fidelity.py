"""E-SSL presets against the official code (rdangovs/essl, read with the search tool at 3522cd0
for cifar10/main.py and 359b27c for imagenet/simclr/main.py): the SimCLR objective, one backbone
pass per view, and the E-SimSiam rotation head."""

import copy

import pytest
import torch
import torch.nn.functional as F

from equissl.app.config import build_config
from equissl.methods import Method, build_method


def _method(preset: str, *extra: str) -> Method:
    torch.manual_seed(0)
    cfg = build_config([preset], ["backbone.width=4", *extra])
    mean, std = torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.25, 0.3])
    return build_method(cfg, in_channels=3, image_size=12, num_classes=10, mean=mean, std=std)


@pytest.mark.parametrize(
    "preset,negatives,passes",
    [
        ("simclr", "other_view", "separate"),  # E-SSL's CIFAR-10 SimCLR baseline
        ("esimclr", "other_view", "separate"),
        ("imagenet-esimclr", "other_view", "separate"),
        ("simsiam", "both_views", "separate"),  # negatives do not apply to SimSiam
        ("esimsiam", "both_views", "separate"),
        ("care", "both_views", "joint"),  # CARE's own SimCLR: NT-Xent, 2N-2 negatives
    ],
)
def test_presets_name_their_objective_and_view_passes(preset, negatives, passes):
    cfg = build_config([preset])
    assert (cfg.method.negatives, cfg.method.view_passes) == (negatives, passes)


def test_separate_passes_are_the_official_two_backbone_calls():
    """cifar10/main.py forward_step: b1 = backbone(x1); b2 = backbone(x2). Each view gets its own
    BatchNorm batch statistics, and the running statistics are updated once per view."""
    method = _method("esimclr").train()
    reference = copy.deepcopy(method.backbone).train()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(8, 3, 12, 12, generator=g)
    got = method.invariance_orientations(x).mean(-1)
    want = torch.cat([reference(x[:4]), reference(x[4:])])
    assert torch.allclose(got, want, atol=1e-6)
    for a, b in zip(method.backbone.buffers(), reference.buffers(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)
    # mutation check: one pass over both views (equissl's previous behaviour) differs
    joint = copy.deepcopy(reference).train()(x)
    assert not torch.allclose(joint, want, atol=1e-4)
    # and `view_passes=joint` is that single pass
    single = _method("esimclr", "method.view_passes=joint").train()
    single.load_state_dict(_method("esimclr").state_dict())
    fresh = _method("esimclr").backbone.train()
    assert torch.allclose(single.invariance_orientations(x).mean(-1), fresh(x), atol=1e-6)


def _official_esimsiam_head(head: torch.nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """cifar10/main.py Branch.predictor2 when args.loss != 'simclr': Linear(512, 2048),
    LayerNorm(2048), ReLU, Linear(2048, 2048), LayerNorm(2048), Linear(2048, 4), written
    functionally with the head's own weights."""
    lin1, ln1, lin2, ln2, lin3 = (m for m in head if not isinstance(m, torch.nn.ReLU))
    h = F.relu(
        F.layer_norm(
            F.linear(x, lin1.weight, lin1.bias), ln1.normalized_shape, ln1.weight, ln1.bias
        )
    )
    h = F.layer_norm(
        F.linear(h, lin2.weight, lin2.bias), ln2.normalized_shape, ln2.weight, ln2.bias
    )
    return F.linear(h, lin3.weight, lin3.bias)


def test_esimsiam_head_is_the_official_one():
    head = _method("esimsiam").terms[0].heads[0]
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["Linear", "LayerNorm", "ReLU", "Linear", "LayerNorm", "Linear"]
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in head.parameters():  # away from LayerNorm's identity start
            p.add_(0.3 * torch.randn(p.shape, generator=g))
        x = torch.randn(5, head[0].in_features, generator=g)
        want = _official_esimsiam_head(head, x)
        assert torch.allclose(head(x), want, atol=1e-6)
        # mutation check: E-SimCLR's head, with its second ReLU, gives other outputs
        simclr_style = torch.nn.Sequential(*head[:5], torch.nn.ReLU(), head[5])
        assert not torch.allclose(simclr_style(x), want, atol=1e-3)
    # E-SimCLR keeps the second ReLU (predictor2 when args.loss == 'simclr')
    kinds = [type(m).__name__ for m in _method("esimclr").terms[0].heads[0]]
    assert kinds == ["Linear", "LayerNorm", "ReLU", "Linear", "LayerNorm", "ReLU", "Linear"]


def _care_copies(pair_per: str, transform: str):
    extra = [f"method.equivariance.0.transform={transform}", "method.equivariance.0.chunks=4"]
    method = _method("care", *extra, f"method.equivariance.0.pair_per={pair_per}")
    # 16 copies of one image: with one draw for the batch, their views stay identical
    images = torch.randint(0, 256, (1, 3, 12, 12), dtype=torch.uint8).repeat(16, 1, 1, 1)
    views, targets = method.terms[0].views(images, torch.Generator().manual_seed(5))
    return views.view(2, 16, -1), targets


def _constant(rows: torch.Tensor) -> bool:
    return all(torch.equal(r, r[:1].expand_as(r)) for r in rows)


def test_care_draws_one_pair_for_the_whole_batch_as_the_official_vmap():
    """Sharut/CARE cifar10_cifar100_stl10/main.py (read at 28718be): `vmap(process,
    randomness='same')(batch_split)` samples t_1, t_2 once for every split, so the whole batch
    shares one pair each step; the splits only partition `equivariance_loss`."""
    assert build_config(["care"]).method.equivariance[0].pair_per == "batch"
    views, _ = _care_copies("batch", "augment")
    assert _constant(views)  # one augmentation per copy, the same for every image
    _, targets = _care_copies("batch", "rotation")
    assert _constant(targets)  # a transformation term: one pair of elements per step
    # mutation check: equissl's previous per-chunk pairs
    views, _ = _care_copies("chunk", "augment")
    assert not _constant(views)
    _, targets = _care_copies("chunk", "rotation")
    assert not _constant(targets)
