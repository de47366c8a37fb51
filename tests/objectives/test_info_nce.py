"""E-SSL's official SimCLR objective, written from rdangovs/essl (read at 3522cd0 and 359b27c):
cifar10/main.py `info_nce_loss` and the `forward_step` line
`loss = info_nce_loss(z1, z2) / 2 + info_nce_loss(z2, z1) / 2`; imagenet/simclr/main.py
`infoNCE` (the same over embeddings gathered from every process)."""

import math

import pytest
import torch

from equissl.objectives import info_nce, nt_xent


def official_info_nce(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    """Pair by pair in float64: for anchor i of view a, -log exp(s(a_i, b_i)/t) /
    sum_j exp(s(a_i, b_j)/t), j over the other view's N embeddings only; averaged over the
    anchors of each direction, the two directions halved and added."""
    a = z1.double() / z1.double().norm(dim=1, keepdim=True)
    b = z2.double() / z2.double().norm(dim=1, keepdim=True)
    n = a.shape[0]

    def one_way(x, y):
        total = 0.0
        for i in range(n):
            denom = sum(math.exp(float(x[i] @ y[j]) / t) for j in range(n))
            total += -math.log(math.exp(float(x[i] @ y[i]) / t) / denom)
        return total / n

    return one_way(a, b) / 2 + one_way(b, a) / 2


@pytest.mark.parametrize("n,d,t", [(2, 3, 0.5), (6, 8, 0.2), (16, 4, 1.0)])
def test_info_nce_matches_the_official_formula(n, d, t):
    g = torch.Generator().manual_seed(n * 10 + d)
    z1, z2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    want = official_info_nce(z1, z2, t)
    assert float(info_nce(z1.double(), z2.double(), t)) == pytest.approx(want, rel=1e-6)
    assert float(info_nce(z1, z2, t)) == pytest.approx(want, rel=1e-5)
    # mutation check: the SimCLR paper's 2N-2 negatives (equissl's previous objective) differ
    assert float(nt_xent(z1, z2, t)) != pytest.approx(want, rel=1e-3)


def test_info_nce_gradient_matches_autograd_of_the_reference_form():
    """The same loss written with full matrices (logits z1 z2^T / t, diagonal labels)."""
    g = torch.Generator().manual_seed(3)
    z1 = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    info_nce(z1, z2, 0.5).backward()
    got = z1.grad.clone(), z2.grad.clone()
    z1.grad = z2.grad = None
    a, b = z1 / z1.norm(dim=1, keepdim=True), z2 / z2.norm(dim=1, keepdim=True)
    labels = torch.arange(5)
    ref = 0.5 * torch.nn.functional.cross_entropy(a @ b.T / 0.5, labels)
    ref = ref + 0.5 * torch.nn.functional.cross_entropy(b @ a.T / 0.5, labels)
    ref.backward()
    assert torch.allclose(got[0], z1.grad) and torch.allclose(got[1], z2.grad)
