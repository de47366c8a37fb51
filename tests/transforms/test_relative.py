import pytest
import torch

from equissl.transforms import get_transformation

GROUPS = [
    "rotation",
    "hflip",
    "vflip",
    "rotflip",
    "jigsaw",
    "invert",
    "rotation+hflip",
    "rotation+jigsaw",
    "rotation+invert",
    "hflip+invert+rotation",
]


@pytest.mark.parametrize("name", GROUPS)
def test_relative_relates_every_pair_of_elements(name):
    size = 6
    t = get_transformation(name, size)
    k = t.num_labels
    assert t.relative is not None and t.relative.shape == (k, k)
    assert t.relative.dtype == torch.long
    a = torch.arange(k).repeat_interleave(k)
    b = torch.arange(k).repeat(k)
    r = t.relative[a, b]
    g = torch.Generator().manual_seed(k)
    x = torch.randint(0, 256, (k * k, 3, size, size), generator=g).float() / 256
    assert torch.equal(t.apply(t.apply(x, a), r), t.apply(x, b))
    assert torch.equal(t.relative[torch.arange(k), torch.arange(k)], torch.zeros(k).long())


def test_relative_tables_of_small_groups():
    assert get_transformation("rotation", 4).relative.tolist() == [
        [(b - a) % 4 for b in range(4)] for a in range(4)
    ]
    assert get_transformation("invert", 4).relative.tolist() == [[0, 1], [1, 0]]
    # rotation and jigsaw do not commute: the naive product of their tables is wrong
    t = get_transformation("rotation+jigsaw", 4)
    rot, jig = get_transformation("rotation", 4).relative, get_transformation("jigsaw", 4).relative
    naive = (rot[:, None, :, None] * 24 + jig[None, :, None, :]).reshape(96, 96)
    assert not torch.equal(t.relative, naive)
    # invert commutes with rotation: there the product table is the product of the tables
    t = get_transformation("rotation+invert", 4)
    inv = get_transformation("invert", 4).relative
    assert torch.equal(
        t.relative, (rot[:, None, :, None] * 2 + inv[None, :, None, :]).reshape(8, 8)
    )


def test_non_groups_have_no_relative_table():
    for name in ("grayscale", "blur", "blur8", "rotation+blur", "grayscale+hflip"):
        assert get_transformation(name, 8).relative is None
