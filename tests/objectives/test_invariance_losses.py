"""SimSiam / BYOL / Barlow Twins / VICReg losses against naive float64 per-pair references."""

import math

import pytest
import torch

from equissl.objectives import (
    barlow_twins_loss,
    byol_loss,
    negative_cosine,
    simsiam_loss,
    vicreg_loss,
)

N, D = 7, 5


def _views(seed: int, n: int = N, d: int = D) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g) * 2 + 0.5


def naive_cos(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    dot = sum(float(a[k]) * float(b[k]) for k in range(a.shape[0]))
    na = math.sqrt(sum(float(a[k]) ** 2 for k in range(a.shape[0])))
    nb = math.sqrt(sum(float(b[k]) ** 2 for k in range(b.shape[0])))
    return dot / (na * nb)


def naive_d(p: torch.Tensor, z: torch.Tensor) -> float:
    return -sum(naive_cos(p[i], z[i]) for i in range(p.shape[0])) / p.shape[0]


def naive_standardise(z: torch.Tensor, eps: float = 1e-5) -> list[list[float]]:
    n, d = z.shape
    out = [[0.0] * d for _ in range(n)]
    for k in range(d):
        col = [float(z[i, k]) for i in range(n)]
        mean = sum(col) / n
        var = sum((x - mean) ** 2 for x in col) / n
        for i in range(n):
            out[i][k] = (col[i] - mean) / math.sqrt(var + eps)
    return out


def naive_barlow(z1, z2, lambd: float, scale: float) -> tuple[float, float, float]:
    """(loss, on-diagonal term, off-diagonal term) with C_ij = sum_b z1n_bi z2n_bj / N."""
    a, b = naive_standardise(z1.double()), naive_standardise(z2.double())
    n, d = z1.shape
    on = off = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[s][i] * b[s][j] for s in range(n)) / n
            if i == j:
                on += (1 - c) ** 2
            else:
                off += c**2
    return scale * (on + lambd * off), on, off


def naive_vicreg_parts(z1, z2) -> tuple[float, float, float]:
    z1, z2 = z1.double(), z2.double()
    n, d = z1.shape
    inv = sum((float(z1[i, k]) - float(z2[i, k])) ** 2 for i in range(n) for k in range(d)) / (
        n * d
    )

    def var_term(z):
        total = 0.0
        for k in range(d):
            mean = sum(float(z[i, k]) for i in range(n)) / n
            var = sum((float(z[i, k]) - mean) ** 2 for i in range(n)) / (n - 1)
            total += max(0.0, 1 - math.sqrt(var + 1e-4))
        return total / d

    def cov_term(z):
        means = [sum(float(z[i, k]) for i in range(n)) / n for k in range(d)]
        total = 0.0
        for a in range(d):
            for b in range(d):
                if a != b:
                    cov = sum(
                        (float(z[i, a]) - means[a]) * (float(z[i, b]) - means[b]) for i in range(n)
                    ) / (n - 1)
                    total += cov**2
        return total / d

    return inv, (var_term(z1) + var_term(z2)) / 2, cov_term(z1) + cov_term(z2)


def test_negative_cosine_simsiam_byol_match_reference():
    p1, p2 = _views(1)
    z1, z2 = _views(2)
    assert float(negative_cosine(p1, z1)) == pytest.approx(naive_d(p1, z1), abs=1e-5)
    ref = 0.5 * (naive_d(p1, z2) + naive_d(p2, z1))
    assert float(simsiam_loss(p1, p2, z1, z2)) == pytest.approx(ref, abs=1e-5)
    byol = (
        sum((2 - 2 * naive_cos(p1[i], z2[i])) + (2 - 2 * naive_cos(p2[i], z1[i])) for i in range(N))
        / N
    )
    assert float(byol_loss(p1, p2, z1, z2)) == pytest.approx(byol, abs=1e-5)


def test_negative_cosine_is_float32_and_minus_one_for_aligned():
    p = torch.randn(N, D).half()
    out = negative_cosine(p, 3 * p)
    assert out.dtype == torch.float32
    assert float(out) == pytest.approx(-1.0, abs=1e-5)


@pytest.mark.parametrize("loss", ["negative_cosine", "simsiam", "byol"])
def test_no_gradient_into_targets(loss):
    p1, p2 = (v.requires_grad_() for v in _views(3))
    z1, z2 = (v.requires_grad_() for v in _views(4))
    if loss == "negative_cosine":
        out = negative_cosine(p1, z1) + negative_cosine(p2, z2)
    elif loss == "simsiam":
        out = simsiam_loss(p1, p2, z1, z2)
    else:
        out = byol_loss(p1, p2, z1, z2)
    out.backward()
    assert z1.grad is None and z2.grad is None
    assert p1.grad is not None and p1.grad.abs().sum() > 0
    assert p2.grad is not None and p2.grad.abs().sum() > 0


@pytest.mark.parametrize("lambd,scale", [(0.0051, 1.0), (0.5, 0.1)])
def test_barlow_twins_matches_reference(lambd, scale):
    z1, z2 = _views(5)
    ref, _, _ = naive_barlow(z1, z2, lambd, scale)
    assert float(barlow_twins_loss(z1, z2, lambd, scale)) == pytest.approx(ref, rel=1e-5, abs=1e-5)


def test_barlow_twins_identical_views_and_linear_coefficients():
    z1, z2 = _views(6)
    # z1 == z2: C_ii = var / (var + eps) ~ 1, so only lambd * off-diagonal is left.
    _, on, off = naive_barlow(z1, z1, 1.0, 1.0)
    assert on < 1e-8
    assert float(barlow_twins_loss(z1, z1, lambd=1.0)) == pytest.approx(off, rel=1e-5)
    assert float(barlow_twins_loss(z1, z1, lambd=0.0)) == pytest.approx(0.0, abs=1e-5)
    # Linear in scale, and affine in lambd with slope = off-diagonal sum.
    base = float(barlow_twins_loss(z1, z2, lambd=0.0))
    unit = float(barlow_twins_loss(z1, z2, lambd=1.0))
    assert float(barlow_twins_loss(z1, z2, lambd=0.3)) == pytest.approx(
        base + 0.3 * (unit - base), rel=1e-5
    )
    assert float(barlow_twins_loss(z1, z2, lambd=0.3, scale=0.024)) == pytest.approx(
        0.024 * float(barlow_twins_loss(z1, z2, lambd=0.3)), rel=1e-5
    )


def test_vicreg_matches_reference():
    z1, z2 = _views(7)
    loss, parts = vicreg_loss(z1, z2, sim_weight=2.0, var_weight=3.0, cov_weight=0.5)
    inv, var, cov = naive_vicreg_parts(z1, z2)
    assert float(parts["invariance"]) == pytest.approx(inv, rel=1e-5)
    assert float(parts["variance"]) == pytest.approx(var, rel=1e-5, abs=1e-6)
    assert float(parts["covariance"]) == pytest.approx(cov, rel=1e-5)
    assert float(loss) == pytest.approx(2 * inv + 3 * var + 0.5 * cov, rel=1e-5)
    assert all(not v.requires_grad for v in parts.values())
    default, _ = vicreg_loss(z1, z2)
    assert float(default) == pytest.approx(25 * inv + 25 * var + cov, rel=1e-5)


def test_vicreg_variance_hinge():
    g = torch.Generator().manual_seed(8)
    spread = torch.randn(64, D, generator=g)
    spread = (spread - spread.mean(0)) / spread.std(0) * 1.5  # per-dimension std exactly 1.5
    _, parts = vicreg_loss(spread, spread.flip(0))
    assert float(parts["variance"]) == 0.0
    collapsed = 1.0 + 1e-3 * torch.randn(64, D, generator=g)
    _, parts = vicreg_loss(collapsed, collapsed)
    assert float(parts["variance"]) > 0.9
    # Partial collapse on one branch: std 0.5 -> hinge 0.5 on every dim, halved over branches.
    _, parts = vicreg_loss(spread, spread / 3)
    assert float(parts["variance"]) == pytest.approx(0.25, abs=1e-3)
