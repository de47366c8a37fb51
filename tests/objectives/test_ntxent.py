import math

import pytest
import torch

from equissl.objectives import nt_xent, prediction_loss


def naive_nt_xent(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    """SimCLR's loss written pair by pair: l(i, j) = -log exp(s_ij/t) / sum_{k != i} exp(s_ik/t)."""
    z = torch.cat([z1, z2]).double()
    z = z / z.norm(dim=1, keepdim=True)
    n2 = z.shape[0]
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        j = (i + n) % n2
        denom = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(n2) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[j]) / t) / denom)
    return total / n2


@pytest.mark.parametrize("n,d,t", [(2, 3, 0.5), (5, 8, 0.1), (16, 4, 1.0)])
def test_nt_xent_matches_naive_reference(n, d, t):
    g = torch.Generator().manual_seed(n * 100 + d)
    z1, z2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    assert float(nt_xent(z1, z2, t)) == pytest.approx(naive_nt_xent(z1, z2, t), rel=1e-5)


def test_nt_xent_is_low_for_aligned_views_and_symmetric():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(32, 16, generator=g)
    aligned = nt_xent(z, z + 1e-3 * torch.randn(32, 16, generator=g), 0.1)
    random = nt_xent(z, torch.randn(32, 16, generator=g), 0.1)
    assert aligned < random
    z2 = torch.randn(32, 16, generator=g)
    assert float(nt_xent(z, z2)) == pytest.approx(float(nt_xent(z2, z)), rel=1e-6)


def test_prediction_loss_matches_cross_entropy_formula():
    logits = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 3.0, 0.0]])
    labels = torch.tensor([0, 1])
    loss, acc = prediction_loss(logits, labels)
    ref = -(math.log(math.exp(2) / (math.exp(2) + 3)) + math.log(1 / (math.exp(3) + 3))) / 2
    assert float(loss) == pytest.approx(ref, rel=1e-6)
    assert float(acc) == 0.5
