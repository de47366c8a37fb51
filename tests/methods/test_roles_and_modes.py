"""Roles and modes of a term against exact references: invariance-role views are transformed
plain views, relative targets relate the two copies, regress targets are parameter differences,
the class-information modes add or subtract the class loss, BYOL's target follows its EMA."""

import pytest
import torch
import torch.nn.functional as F

from equissl.app.config import build_config
from equissl.methods import Method, build_method
from equissl.methods.invariance import BYOL

SIZE = 12


def _method(presets, overrides) -> Method:
    torch.manual_seed(0)
    cfg = build_config(presets, ["backbone.width=4", *overrides])
    mean, std = torch.full((3,), 0.5), torch.full((3,), 0.25)
    return build_method(cfg, in_channels=3, image_size=SIZE, num_classes=4, mean=mean, std=std)


def _batch(n: int = 8):
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (n, 3, SIZE, SIZE), dtype=torch.uint8, generator=g)
    return images, torch.randint(0, 4, (n,), generator=g)


def test_invariance_role_rotates_each_invariance_view_by_a_sampled_element():
    images, _ = _batch()
    plain = _method(["simclr"], []).make_views(images, torch.Generator().manual_seed(5))
    rolled = _method(
        ["simclr"], ["method.equivariance=[{transform: rotation, role: augment}]"]
    ).make_views(images, torch.Generator().manual_seed(5))
    assert set(rolled) == {"invariance"}  # no term, no head: the rotation is only applied
    turns = []
    for a, b in zip(plain["invariance"], rolled["invariance"], strict=True):
        matches = [k for k in range(4) if torch.equal(torch.rot90(a, k, (1, 2)), b)]
        assert len(matches) == 1
        turns.append(matches[0])
    assert len(set(turns)) > 1  # elements are drawn per view, not once per batch


def test_off_role_is_ignored():
    images, labels = _batch()
    off = _method(["esimclr"], ["method.equivariance.0.role=none"])
    assert len(off.terms) == 0 and not off.views.transforms
    ref = _method(["simclr"], [])
    loss_off, _ = off.loss(images, labels, torch.Generator().manual_seed(1))
    loss_ref, _ = ref.loss(images, labels, torch.Generator().manual_seed(1))
    assert float(loss_off) == pytest.approx(float(loss_ref), rel=1e-6)


@pytest.mark.parametrize("transform", ["rotation", "jigsaw", "rotflip", "invert"])
def test_relative_targets_relate_the_two_copies(transform):
    method = _method(
        ["pretext"],
        [f"method.equivariance.0.transform={transform}", "method.equivariance.0.mode=relative"],
    )
    images, _ = _batch()
    views = method.make_views(images, torch.Generator().manual_seed(2))
    n = images.shape[0]
    first, second, targets = views["0"][:n], views["0"][n:], views["0/targets"]
    t = method.terms[0].transformation
    assert torch.allclose(t.apply(first, targets), second, atol=1e-6)
    assert method.terms[0].heads[0][0].in_features == 2 * method.backbone.num_features


def _augself_diff(pa, pb, size, widths=(0.8, 0.8, 0.8, 0.2)):
    """hankook/AugSelf (read at 6dd5ed8) transforms.py `extract_diff(t1, t2, crop1, crop2)`
    for a view pair (a, b): crops as [i/H, j/W, h/H, w/W]; centres c = crop[:2] + crop[2:] / 2;
    both centres' x mirrored (1 - x) where view a is flipped (`center1[f1, 1]`,
    `center2[f1, 1]`); crop diff = [ca - cb, size_a - size_b]; colour w = (factor - 1) / width
    for brightness, contrast and saturation and hue / width (0 where not jittered), diff
    w_a - w_b. Per image, in float64."""
    rows = []
    for k in range(pa["boxes"].shape[0]):
        crops = []
        for p in (pa, pb):
            i, j, h, w = (float(v) / size for v in p["boxes"][k])
            crops.append([i + h / 2, j + w / 2, h, w])
        if bool(pa["flipped"][k]):
            crops[0][1], crops[1][1] = 1 - crops[0][1], 1 - crops[1][1]
        crop = [crops[0][m] - crops[1][m] for m in range(4)]
        colour = []
        for m in range(4):
            fa, fb = float(pa["jitter"][k, m]), float(pb["jitter"][k, m])
            base = 1.0 if m < 3 else 0.0
            colour.append(((fa - base) - (fb - base)) / widths[m])
        rows.append(crop + colour)
    return torch.tensor(rows, dtype=torch.float64)


def test_regress_targets_are_augselfs_extract_diff_for_both_view_orders():
    method = _method(
        ["pretext"],
        [
            "method.equivariance.0.transform=crop+jitter",
            "method.equivariance.0.mode=regress",
            "method.equivariance.0.augment=simclr",
            "method.equivariance.0.size_ratio=1.0",
        ],
    )
    images, _ = _batch()
    n = images.shape[0]
    term = method.terms[0]
    g = torch.Generator().manual_seed(4)
    views, targets = term.views(images, g)
    g = torch.Generator().manual_seed(4)
    (_, p1), (_, p2) = (term.augment(images, g, return_params=True) for _ in range(2))
    assert bool(p1["flipped"].any()) and not bool(p1["flipped"].all())  # both cases tested
    want = torch.cat([_augself_diff(p1, p2, SIZE), _augself_diff(p2, p1, SIZE)])
    assert views.shape == (2 * n, 3, SIZE, SIZE)
    assert torch.allclose(targets.double(), want, atol=1e-6)

    # mutation check: the previous target (view 1 minus view 2, neither mirrored nor scaled)
    def plain(p):
        top, left, h, w = p["boxes"].float().unbind(1)
        box = torch.stack([top + h / 2, left + w / 2, h, w], 1) / SIZE
        return torch.cat([box, p["jitter"].float()], 1)

    assert not torch.allclose(targets[:n], plain(p1) - plain(p2), atol=1e-3)


def test_regress_loss_is_augselfs_symmetric_tanh_mse_with_a_head_per_group():
    """trainers.py `SSObjective.__call__(symmetric=True)`: z = [[y1, y2]; [y2, y1]],
    d = [d1; d2], loss = sum over groups of MSE(tanh(head_k(z)), d_k); models.py
    `load_ss_predictor`: per group load_mlp(2 n_in, 512, 4, num_layers=3, last_bn=False)."""
    method = _method(
        ["pretext"],
        ["method.equivariance.0.transform=crop+jitter", "method.equivariance.0.mode=regress"],
    )
    term = method.terms[0]
    f = method.backbone.num_features
    assert len(term.heads) == 2
    for head in term.heads:
        kinds = [type(m).__name__ for m in head]
        assert kinds == ["Linear", "BatchNorm1d", "ReLU"] * 2 + ["Linear"]
        assert (head[0].in_features, head[0].out_features, head[-1].out_features) == (2 * f, f, 4)
    g = torch.Generator().manual_seed(6)
    h = torch.randn(10, f, generator=g)
    targets = torch.rand(10, 8, generator=g) - 0.5
    loss, _ = term.loss(h, targets)
    z = torch.cat([torch.cat([h[:5], h[5:]], 1), torch.cat([h[5:], h[:5]], 1)])
    want = sum(
        F.mse_loss(torch.tanh(head(z)), targets[:, 4 * k : 4 * k + 4])
        for k, head in enumerate(term.heads)
    )
    assert float(loss) == pytest.approx(float(want), rel=1e-6)
    # mutation check: without tanh the loss differs
    raw = sum(
        F.mse_loss(head(z), targets[:, 4 * k : 4 * k + 4]) for k, head in enumerate(term.heads)
    )
    assert float(raw) != pytest.approx(float(want), rel=1e-3)


def test_regress_term_reuses_the_invariance_views():
    method = _method(
        ["simclr"],
        ["method.equivariance=[{transform: crop, mode: regress, weight: 1.0}]"],
    )
    views = method.make_views(_batch()[0], torch.Generator().manual_seed(1))
    assert set(views) == {"invariance", "0/targets"}
    assert views["0/targets"].shape == (16, 4)  # both view orders of 8 images


def test_class_information_modes_add_or_subtract_the_class_loss():
    images, labels = _batch()
    out = {}
    for mode in ("detached", "joint", "eliminate"):
        method = _method(["pretext"], [f"method.classifier={mode}", "method.class_weight=0.5"])
        out[mode] = method.loss(images, labels, torch.Generator().manual_seed(9))
    base = float(out["detached"][0])
    class_loss = float(out["joint"][1]["class_loss"])
    assert class_loss > 0
    assert float(out["joint"][0]) == pytest.approx(base + 0.5 * class_loss, rel=1e-5)
    assert float(out["eliminate"][0]) == pytest.approx(base - 0.5 * class_loss, rel=1e-5)
    # The class loss equals the online classifier's loss (same head, same features).
    assert class_loss == pytest.approx(float(out["joint"][1]["online_loss"]), rel=1e-5)


def test_class_loss_reaches_the_encoder_only_in_joint_and_eliminate_modes():
    images, labels = _batch()
    grads = {}
    for mode in ("detached", "joint", "eliminate"):
        method = _method(["pretext"], [f"method.classifier={mode}"])
        loss, _ = method.loss(images, labels, torch.Generator().manual_seed(9))
        loss.backward()
        grads[mode] = method.backbone.stem[0].weight.grad.clone()
    joint_part = grads["joint"] - grads["detached"]
    assert joint_part.abs().sum() > 0
    assert torch.allclose(grads["eliminate"] - grads["detached"], -joint_part, atol=1e-6)


def test_byol_target_is_an_ema_of_the_online_networks():
    method = _method(["byol"], ["method.ema=0.9"])
    byol = method.invariance
    assert isinstance(byol, BYOL)
    with torch.no_grad():
        for p in method.backbone.parameters():
            p.add_(1.0)
    before = [p.clone() for p in byol.target_parameters()]
    online = [*method.backbone.parameters(), *byol.projector.parameters()]
    method.after_step(0.0)  # progress 0: momentum = base = 0.9
    for old, new, o in zip(before, byol.target_parameters(), online, strict=True):
        assert torch.allclose(new, 0.9 * old + 0.1 * o, atol=1e-6)
    assert byol.momentum(1.0) == pytest.approx(1.0)
    assert not any(p.requires_grad for p in byol.target_parameters())
    assert "invariance.target_backbone.stem.0.weight" in method.state_dict()


def test_care_group_views_share_one_pair_of_elements_per_chunk():
    images, _ = _batch(12)
    method = _method(
        ["pretext"],
        [
            "method.equivariance.0.mode=care",
            "method.equivariance.0.uniformity=1.0",
            "method.equivariance.0.chunks=3",
            "method.equivariance.0.augment=none",
        ],
    )
    views = method.make_views(images, torch.Generator().manual_seed(2))
    pair = views["0/targets"]
    assert pair.shape == (2, 12)
    for labels in pair:  # chunks of 4 consecutive images share their element
        assert all(len(set(block.tolist())) == 1 for block in labels.split(4))
    x = images.float() / 255
    first, second = views["0"].split(12)
    for k in range(12):
        assert torch.allclose(first[k], torch.rot90(x[k], int(pair[0, k]), (1, 2)), atol=1e-6)
        assert torch.allclose(second[k], torch.rot90(x[k], int(pair[1, k]), (1, 2)), atol=1e-6)


def test_care_augment_views_share_one_draw_per_chunk():
    """The `pair_per=chunk` option (the preset draws one pair per batch, as CARE's code)."""
    same = torch.randint(0, 256, (1, 3, SIZE, SIZE), dtype=torch.uint8).expand(8, -1, -1, -1)
    method = _method(
        ["care"], ["method.equivariance.0.chunks=2", "method.equivariance.0.pair_per=chunk"]
    )
    views = method.make_views(same.contiguous(), torch.Generator().manual_seed(4))["0"]
    for copy in views.split(8):  # one image repeated: equal views within a chunk only
        assert all(torch.equal(copy[0], copy[k]) for k in range(4))
        assert all(torch.equal(copy[4], copy[k]) for k in range(4, 8))
        assert not torch.equal(copy[0], copy[4])


def test_care_embeds_with_simclr_projector_or_its_own():
    shared = _method(["care"], [])
    assert shared.terms[0].projector is None
    assert shared.embedding_head() is shared.invariance.projector
    assert not any(k.startswith("shared_projector") for k in shared.state_dict())
    own = _method(["care-only"], [])
    assert own.terms[0].projector is not None
    assert own.embedding_head() is own.terms[0].projector
