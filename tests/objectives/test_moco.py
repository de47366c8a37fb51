"""MoCo-v2 against references written from its maths, as in CARE's ImageNet-100 code
(Sharut/CARE, commit 28718be429cffbd0375903cc7534a0528d0e9502, imagenet100/model/builder.py,
Model.forward_moco, _dequeue_and_enqueue, _momentum_update_key_encoder; loss.py `loss`:
nn.CrossEntropyLoss): logits [q.k+, q.queue] / T with the positive at index 0, the queue a ring
buffer written at its pointer, the key encoder m key + (1 - m) query over its parameters."""

import math

import pytest
import torch
import torch.nn.functional as F

from equissl.app.config import build_config
from equissl.errors import ConfigError
from equissl.methods import build_method
from equissl.models import KeyQueue
from equissl.objectives import moco_loss


def reference_moco(q, k, queue, t):
    """Float64, one query at a time: -log(e^{q.k/t} / (e^{q.k/t} + sum_j e^{q.queue_j/t}))."""

    def unit(rows):
        return [[x / math.sqrt(sum(y * y for y in v)) for x in v] for v in rows.double().tolist()]

    q, k = unit(q), unit(k)
    total = 0.0
    for qi, ki in zip(q, k, strict=True):
        pos = math.exp(sum(a * b for a, b in zip(qi, ki, strict=True)) / t)
        neg = sum(math.exp(sum(a * b for a, b in zip(qi, n, strict=True)) / t) for n in queue)
        total += -math.log(pos / (pos + neg))
    return total / len(q)


def _inputs(n=6, d=5, size=9):
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    queue = F.normalize(torch.randn(size, d, generator=g), dim=1)
    return q, k, queue


def test_moco_loss_matches_the_reference():
    q, k, queue = _inputs()
    ref = reference_moco(q, k, queue.double().tolist(), 0.2)
    assert moco_loss(q, k, queue, 0.2).item() == pytest.approx(ref, rel=1e-5)
    # Mutations the reference tells apart: the positive left out of the denominator, the
    # temperature 0.07 (MoCo v1's), the keys' own batch as negatives (SimCLR-style).
    qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)
    no_pos = (-(qn * kn).sum(1) / 0.2 + torch.logsumexp(qn @ queue.T / 0.2, 1)).mean()
    assert no_pos.item() != pytest.approx(ref, rel=1e-3)
    assert moco_loss(q, k, queue, 0.07).item() != pytest.approx(ref, rel=1e-3)
    assert moco_loss(q, k, kn, 0.2).item() != pytest.approx(ref, rel=1e-3)


def test_moco_loss_sends_no_gradient_to_keys_or_queue():
    q, k, queue = _inputs()
    q.requires_grad_(True)
    k.requires_grad_(True)
    queue.requires_grad_(True)
    moco_loss(q, k, queue, 0.2).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert k.grad is None and queue.grad is None


def test_queue_is_a_ring_buffer_in_push_order():
    """_dequeue_and_enqueue: keys written at ptr..ptr+B-1, ptr <- (ptr + B) mod K."""
    queue = KeyQueue(size=6, dim=2)
    batches = [torch.full((2, 2), float(i)) for i in range(1, 5)]
    expected = [list(r) for r in queue.keys.tolist()]
    ptr = 0
    for b in batches:
        queue.push(b)
        for row in b.tolist():
            expected[ptr] = row
            ptr = (ptr + 1) % 6
        assert queue.keys.tolist() == expected
        assert int(queue.ptr) == ptr
    # The oldest batch (1) was overwritten by the fourth; 2, 3, 4 remain, 4 at rows 0-1.
    assert queue.keys[:, 0].tolist() == [4, 4, 2, 2, 3, 3]
    assert {"keys", "ptr"} <= set(queue.state_dict())


def _moco_method(extra=()):
    cfg = build_config(
        ["moco"],
        ["backbone.width=4", "optim.batch_size=8", "method.moco_queue=16", *extra],
    )
    mean, std = torch.full((3,), 0.5), torch.full((3,), 0.25)
    return build_method(cfg, in_channels=3, image_size=8, num_classes=3, mean=mean, std=std)


def test_key_encoder_moves_by_its_momentum_on_parameters_only():
    torch.manual_seed(0)
    method = _moco_method(["method.moco_momentum=0.9"])
    moco = method.invariance
    online = [*method.backbone.parameters(), *moco.projector.parameters()]
    with torch.no_grad():
        for p in online:
            p.add_(torch.randn_like(p))
        for b in method.backbone.buffers():
            b.add_(1)
    key_before = [p.detach().double().clone() for p in moco.key_parameters()]
    key_buffers = [b.clone() for b in moco.key_backbone.buffers()]
    method.after_step(0.5)
    for new, old, q in zip(moco.key_parameters(), key_before, online, strict=True):
        torch.testing.assert_close(new.double(), 0.9 * old + 0.1 * q.double(), rtol=0, atol=1e-6)
    # MoCo keeps the key encoder's own BatchNorm statistics (BYOL's update copies them).
    for new, old in zip(moco.key_backbone.buffers(), key_buffers, strict=True):
        assert torch.equal(new, old)


def test_a_step_contrasts_against_the_previous_queue_then_enqueues_its_keys():
    torch.manual_seed(0)
    method = _moco_method()
    images = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8)
    before = method.invariance.queue.keys.clone()
    views = method.make_views(images, torch.Generator().manual_seed(3))
    x = method.normalize(views["invariance"])
    with torch.no_grad():
        q = method.invariance.projector(method.backbone(x[:8]))
        k = method.invariance.key_projector(method.invariance.key_backbone(x[8:]))
    _, metrics = method.loss(
        images, torch.zeros(8, dtype=torch.long), torch.Generator().manual_seed(3)
    )
    ref = reference_moco(q, k, before.double().tolist(), 0.2)
    assert metrics["ssl_loss"].item() == pytest.approx(ref, rel=1e-4)
    # Then its keys are enqueued at rows 0..7 and the pointer moves on.
    torch.testing.assert_close(
        method.invariance.queue.keys[:8], F.normalize(k, dim=1), rtol=0, atol=1e-5
    )
    assert torch.equal(method.invariance.queue.keys[8:], before[8:])
    assert int(method.invariance.queue.ptr) == 8


def test_queue_and_key_encoder_are_saved_and_restored():
    torch.manual_seed(0)
    method = _moco_method()
    method.invariance.queue.push(torch.ones(8, 128))
    state = method.state_dict()
    assert "invariance.queue.keys" in state and "invariance.queue.ptr" in state
    assert any(k.startswith("invariance.key_backbone.") for k in state)
    torch.manual_seed(1)
    fresh = _moco_method()
    fresh.load_state_dict(state)
    assert torch.equal(fresh.invariance.queue.keys, method.invariance.queue.keys)
    assert int(fresh.invariance.queue.ptr) == 8


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["method.moco_queue=100", "optim.batch_size=128"], "moco_queue=100 is smaller"),
        (["method.moco_momentum=1.5"], "method.moco_momentum"),
        (["method.proj_norm=layer"], "method.proj_norm"),
        (
            [
                "method.equivariance=[{transform: crop, mode: regress, augment: simclr}]",
            ],
            "encodes one query view",
        ),
    ],
)
def test_moco_settings_are_checked(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_config(["moco"], overrides)
