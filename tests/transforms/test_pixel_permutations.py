from itertools import permutations

import torch

from equissl.transforms import get_transformation
from equissl.transforms.pixel_permutations import JIGSAW_PERMUTATIONS


def images(n: int, size: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    """Generic test images with dyadic values (k / 256): every operation here is exact."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, size, size), generator=g).float() / 256


def full(n: int, label: int) -> torch.Tensor:
    return torch.full((n,), label, dtype=torch.long)


def pairwise_distinct(outputs: torch.Tensor) -> bool:
    flat = outputs.reshape(outputs.shape[0], -1)
    return bool((torch.cdist(flat, flat) + torch.eye(len(flat)) > 0).all())


def test_rotation_matches_rot90_and_is_c4():
    t = get_transformation("rotation", 8)
    x = images(3, 8)
    assert t.num_labels == 4 and t.factors == ()
    for k in range(4):
        assert torch.equal(t.apply(x, full(3, k)), torch.rot90(x, k, dims=(2, 3)))
    assert pairwise_distinct(t.expand(x[:1])[0])
    y = x
    for _ in range(4):
        y = t.apply(y, full(3, 1))
    assert torch.equal(y, x)


def test_rotation_at_odd_size():
    t = get_transformation("rotation", 7)
    x = images(2, 7)
    for k in range(4):
        assert torch.equal(t.apply(x, full(2, k)), torch.rot90(x, k, dims=(2, 3)))


def test_flips_match_torch_flip_and_are_involutions():
    x = images(2, 6)
    for name, dim in (("hflip", 3), ("vflip", 2)):
        t = get_transformation(name, 6)
        assert torch.equal(t.apply(x, full(2, 0)), x)
        assert torch.equal(t.apply(x, full(2, 1)), x.flip(dim))
        assert torch.equal(t.apply(t.apply(x, full(2, 1)), full(2, 1)), x)


def test_rotflip_is_d4_with_the_documented_convention():
    t = get_transformation("rotflip", 8)
    x = images(2, 8)
    for f in range(2):
        for k in range(4):
            expected = torch.rot90(x, k, dims=(2, 3))
            expected = expected.flip(3) if f else expected
            assert torch.equal(t.apply(x, full(2, 4 * f + k)), expected)
    assert pairwise_distinct(t.expand(x[:1])[0])
    rel = t.relative
    for i in range(8):  # a Latin square: each row and column a permutation
        assert sorted(rel[i].tolist()) == list(range(8))
        assert sorted(rel[:, i].tolist()) == list(range(8))
    # closure by applying: a then r is the element b with relative[a, b] = r
    a = torch.arange(8).repeat_interleave(8)
    r = torch.arange(8).repeat(8)
    b = (rel[a] == r[:, None]).long().argmax(1)
    xs = images(64, 8, seed=1)
    assert torch.equal(t.apply(t.apply(xs, a), r), t.apply(xs, b))


def reference_jigsaw(x: torch.Tensor, perm: tuple[int, ...]) -> torch.Tensor:
    """Explicit quadrant slicing; at odd sizes the middle row and column stay."""
    size = x.shape[-1]
    h = size // 2
    lo, hi = slice(0, h), slice(size - h, size)
    boxes = [(lo, lo), (lo, hi), (hi, lo), (hi, hi)]
    out = x.clone()
    for i, j in enumerate(perm):
        out[..., boxes[i][0], boxes[i][1]] = x[..., boxes[j][0], boxes[j][1]]
    return out


def test_jigsaw_matches_quadrant_slicing_at_even_and_odd_sizes():
    assert list(JIGSAW_PERMUTATIONS) == list(permutations(range(4)))
    for size in (8, 9):
        t = get_transformation("jigsaw", size)
        x = images(2, size)
        assert torch.equal(t.apply(x, full(2, 0)), x)
        for label in (1, 7, 13, 23):
            expected = reference_jigsaw(x, JIGSAW_PERMUTATIONS[label])
            assert torch.equal(t.apply(x, full(2, label)), expected)
        if size % 2:
            out = t.apply(x, full(2, 23))
            assert torch.equal(out[..., size // 2, :], x[..., size // 2, :])
            assert torch.equal(out[..., :, size // 2], x[..., :, size // 2])


def test_jigsaw_elements_are_distinct_and_invertible_through_relative():
    for size in (8, 9):
        t = get_transformation("jigsaw", size)
        assert t.num_labels == 24
        x = images(1, size)
        outputs, labels = t.expand(x)
        assert pairwise_distinct(outputs)
        inverse = t.relative[labels, 0]  # r with g_r o g_l = identity
        assert torch.equal(t.apply(outputs, inverse), x.expand(24, -1, -1, -1))
