"""CARE's Gram-matching loss and the uniformity term against their definitions."""

import math

import pytest
import torch
import torch.nn.functional as F

from equissl.chunks import chunk_ids, chunk_sizes
from equissl.objectives import care_loss, infonce_uniformity, uniformity_loss


def _orthogonal(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()


def _embeddings(n: int = 48, d: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _reference(z1: torch.Tensor, z2: torch.Tensor, chunks: int) -> float:
    """Per chunk: mean over i != j of (<z1_i, z1_j> - <z2_i, z2_j>)^2 on unit vectors; then
    the mean over chunks (float64, explicit loops)."""
    z1 = F.normalize(z1.double(), dim=1)
    z2 = F.normalize(z2.double(), dim=1)
    per_chunk = []
    for block in torch.arange(z1.shape[0]).tensor_split(chunks):
        terms = [(z1[i] @ z1[j] - z2[i] @ z2[j]) ** 2 for i in block for j in block if i != j]
        if terms:
            per_chunk.append(sum(terms) / len(terms))
    return float(sum(per_chunk) / len(per_chunk)) if per_chunk else 0.0  # no pairs: 0


def test_zero_when_the_views_differ_by_an_orthogonal_map_and_positive_otherwise():
    z = _embeddings()
    q = _orthogonal(16, 1)
    assert float(care_loss(z, z @ q.T, chunks=4)) < 1e-10
    other = _embeddings(seed=2)
    assert float(care_loss(z, other, chunks=4)) > 1e-2
    scaled = z * torch.linspace(0.2, 3.0, 16)  # a non-orthogonal linear map
    assert float(care_loss(z, scaled, chunks=4)) > 1e-3


def test_invariant_to_a_shared_orthogonal_transform_of_both_views():
    z1, z2 = _embeddings(seed=3), _embeddings(seed=4)
    q = _orthogonal(16, 5)
    before = float(care_loss(z1, z2, chunks=6))
    after = float(care_loss(z1 @ q.T, z2 @ q.T, chunks=6))
    assert after == pytest.approx(before, rel=1e-5)
    scale = torch.linspace(0.5, 2.0, 16)  # not a shared orthogonal map: the loss moves
    assert float(care_loss(z1 * scale, z2 * scale, chunks=6)) != pytest.approx(before, rel=1e-3)


@pytest.mark.parametrize(("n", "chunks"), [(48, 4), (50, 16), (10, 3), (9, 5), (7, 7), (5, 8)])
def test_chunked_loss_equals_the_per_chunk_reference(n, chunks):
    z1, z2 = _embeddings(n, seed=6), _embeddings(n, seed=7)
    assert float(care_loss(z1, z2, chunks)) == pytest.approx(_reference(z1, z2, chunks), rel=1e-5)


def test_pairs_across_chunks_do_not_count():
    z1, z2 = _embeddings(8, seed=8), _embeddings(8, seed=9)
    # Rotating the second chunk of z2 on its own changes only cross-chunk inner products.
    moved = z2.clone()
    moved[4:] = moved[4:] @ _orthogonal(16, 10).T
    assert float(care_loss(z1, moved, 2)) == pytest.approx(float(care_loss(z1, z2, 2)), rel=1e-5)
    assert float(care_loss(z1, moved, 1)) != pytest.approx(float(care_loss(z1, z2, 1)), rel=1e-3)


def test_chunks_split_like_tensor_split():
    for n, c in [(10, 3), (11, 3), (256, 16), (5, 8), (1, 1)]:
        expected = [len(b) for b in torch.arange(n).tensor_split(min(c, n))]
        assert chunk_sizes(n, c) == expected
        ids = chunk_ids(n, c)
        assert torch.equal(torch.bincount(ids), torch.tensor(expected))
        assert torch.all(ids[1:] >= ids[:-1])


def test_uniformity_matches_its_definition():
    z = _embeddings(20, 8, seed=11)
    u = F.normalize(z.double(), dim=1)
    values = [
        math.exp(-2 * float((u[i] - u[j]).square().sum()))
        for i in range(20)
        for j in range(20)
        if i != j
    ]
    expected = math.log(sum(values) / len(values))
    assert float(uniformity_loss(z)) == pytest.approx(expected, rel=1e-5)
    collapsed = torch.ones(20, 8)
    assert float(uniformity_loss(collapsed)) == pytest.approx(0.0, abs=1e-6)
    assert float(uniformity_loss(z)) < -0.5


def test_no_host_sync_in_the_losses():
    # Meta tensors have no values: any .item(), nonzero() or data-dependent shape would fail.
    z1 = torch.empty(40, 8, device="meta")
    z2 = torch.empty(40, 8, device="meta")
    assert care_loss(z1, z2, chunks=6).shape == ()
    assert uniformity_loss(z1).shape == ()
    assert chunk_ids(40, 6, "meta").shape == (40,)


def test_exact_under_bf16_autocast():
    z = _embeddings()
    q = _orthogonal(16, 12)
    rotated = z @ q.T
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = care_loss(z, rotated, chunks=4)
    assert loss.dtype == torch.float32
    assert float(loss) < 1e-10


def official_uniformity(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    """Sharut/CARE (read at 28718be) cifar10_cifar100_stl10/utils.py `infoNCE`, third output,
    the `--loss-subtype uniformity` loss of main.py: out = [out_1; out_2]; for each of the 2N
    rows, Ng = sum of exp(out_i . out_k / t) over k not in {i, i +- N} (get_negative_mask);
    the loss is mean(log Ng). Written with loops in float64; the official embeddings are
    L2-normalised by the model, here before the loops."""
    out = torch.cat([z1, z2]).double()
    out = out / out.norm(dim=1, keepdim=True)
    n2, n = out.shape[0], out.shape[0] // 2
    total = 0.0
    for i in range(n2):
        ng = sum(
            math.exp(float(out[i] @ out[k]) / t) for k in range(n2) if k != i and k != (i + n) % n2
        )
        total += math.log(ng)
    return total / n2


@pytest.mark.parametrize("n,d,t", [(2, 3, 0.5), (6, 8, 0.5), (9, 4, 0.2)])
def test_infonce_uniformity_matches_cares_official_subtype(n, d, t):
    g = torch.Generator().manual_seed(n + d)
    z1, z2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    want = official_uniformity(z1, z2, t)
    assert float(infonce_uniformity(z1, z2, t)) == pytest.approx(want, rel=1e-5)
    # mutation check: Wang & Isola's form (equissl's previous care-only term) is another number
    previous = float((uniformity_loss(z1) + uniformity_loss(z2)) / 2)
    assert previous != pytest.approx(want, rel=1e-2)


def test_care_only_uses_the_official_uniformity():
    from equissl.app.config import build_config

    term = build_config(["care-only"]).method.equivariance[0]
    assert (term.uniformity_form, term.uniformity_temperature) == ("infonce", 0.5)
