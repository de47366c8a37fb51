"""E-SimCLR's loss is the sum of its parts, computed here from the same views by hand."""

import pytest
import torch
import torch.nn.functional as F

from equissl.app.config import build_config
from equissl.methods import Method, build_method
from equissl.objectives import info_nce, nt_xent


def _method(preset: str) -> Method:
    torch.manual_seed(0)
    cfg = build_config([preset], ["backbone.width=4", "method.temperature=0.2"])
    mean, std = torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.25, 0.3])
    return build_method(cfg, in_channels=3, image_size=12, num_classes=10, mean=mean, std=std)


def _batch(n: int = 6):
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, 3, 12, 12), dtype=torch.uint8, generator=g)
    return images, torch.randint(0, 10, (n,), generator=g)


def test_esimclr_loss_is_the_official_forward_step_plus_online_ce():
    """E-SSL's `forward_step` (rdangovs/essl cifar10/main.py, read at 3522cd0): b1 = backbone(x1),
    b2 = backbone(x2) (two passes), loss = info_nce_loss(z1, z2)/2 + info_nce_loss(z2, z1)/2
    + lmbd x CE(predictor2(backbone(rotated)), rotation labels); plus equissl's online CE."""
    method = _method("esimclr")
    images, labels = _batch()
    n = images.shape[0]
    views = method.make_views(images, torch.Generator().manual_seed(7))
    assert views["invariance"].shape == (2 * n, 3, 12, 12)
    assert views["0"].shape == (4 * n, 3, 6, 6)  # half-size crops, four rotations each
    assert views["0/targets"].tolist() == [k for k in range(4) for _ in range(n)]
    for k in range(4):  # block k is block 0 turned k times
        assert torch.equal(views["0"][k * n : (k + 1) * n], torch.rot90(views["0"][:n], k, (2, 3)))

    def norm(x):
        return (x - method.mean.view(1, 3, 1, 1)) / method.std.view(1, 3, 1, 1)

    x = norm(views["invariance"])
    h = torch.cat([method.backbone(x[:n]), method.backbone(x[n:])])
    z = method.invariance.projector(h)
    ssl = info_nce(z[:n], z[n:], 0.2)
    # mutation checks: equissl's previous objective and single joint pass give other values
    assert float(nt_xent(z[:n], z[n:], 0.2)) != pytest.approx(float(ssl), rel=1e-3)
    joint = method.invariance.projector(method.backbone(x))
    assert float(info_nce(joint[:n], joint[n:], 0.2)) != pytest.approx(float(ssl), rel=1e-4)
    rot = F.cross_entropy(
        method.terms[0].heads[0](method.backbone(norm(views["0"]))), views["0/targets"]
    )
    online = F.cross_entropy(method.classifier(h[:n]), labels)
    expected = ssl + 0.4 * rot + online

    loss, metrics = method.loss(images, labels, torch.Generator().manual_seed(7))
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert float(metrics["ssl_loss"]) == pytest.approx(float(ssl), rel=1e-5)
    assert float(metrics["rotation_loss"]) == pytest.approx(float(rot), rel=1e-5)
    assert float(metrics["loss"]) == pytest.approx(float(ssl + 0.4 * rot), rel=1e-5)


def test_simclr_has_no_rotation_term_and_online_head_is_detached():
    method = _method("simclr")
    images, labels = _batch()

    def backbone_grad():
        method.zero_grad()
        loss, metrics = method.loss(images, labels, torch.Generator().manual_seed(3))
        loss.backward()
        return metrics, [p.grad.clone() for p in method.backbone.parameters()]

    metrics, before = backbone_grad()
    assert "rotation_loss" not in metrics
    with torch.no_grad():  # changes the online loss, not the SSL loss
        method.classifier.weight.mul_(10)
    _, after = backbone_grad()
    assert method.classifier.weight.grad.abs().sum() > 0
    for a, b in zip(before, after, strict=True):
        assert torch.equal(a, b)


def test_unlabeled_batch_gives_a_finite_loss():
    method = _method("simclr")
    images, _ = _batch()
    loss, metrics = method.loss(images, torch.full((6,), -1), torch.Generator().manual_seed(3))
    assert torch.isfinite(loss)
    assert float(metrics["online_acc"]) == 0.0
