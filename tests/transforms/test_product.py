import torch

from equissl.transforms import get_transformation


def test_product_applies_the_factors_in_order():
    t = get_transformation("rotation+hflip", 6)
    rot, flip = get_transformation("rotation", 6), get_transformation("hflip", 6)
    assert t.name == "rotation+hflip" and t.num_labels == 8 and t.factors == (rot, flip)
    x = torch.rand(8, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(8)
    la, lb = labels // 2, labels % 2
    assert torch.equal(t.apply(x, labels), flip.apply(rot.apply(x, la), lb))
    for i in range(8):
        expected = torch.rot90(x[i], int(la[i]), dims=(1, 2))
        expected = expected.flip(2) if lb[i] else expected
        assert torch.equal(t.apply(x[i : i + 1], labels[i : i + 1])[0], expected)


def test_split_labels_round_trips():
    t = get_transformation("rotation+hflip", 6)
    labels = torch.arange(8)
    la, lb = t.split_labels(labels)
    assert la.tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and lb.tolist() == [0, 1] * 4
    assert torch.equal(la * 2 + lb, labels)
    t3 = get_transformation("rotation+jigsaw+invert", 6)
    assert [f.name for f in t3.factors] == ["rotation", "jigsaw", "invert"]
    labels = torch.arange(t3.num_labels)
    a, b, c = t3.split_labels(labels)
    assert torch.equal((a * 24 + b) * 2 + c, labels)
    assert get_transformation("jigsaw", 6).split_labels(labels)[0] is labels


def test_product_with_a_non_group_factor():
    t = get_transformation("rotation+blur", 16)
    rot, blur = get_transformation("rotation", 16), get_transformation("blur", 16)
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 5, 10, 15])
    expected = blur.apply(rot.apply(x, labels // 4), labels % 4)
    assert torch.equal(t.apply(x, labels), expected)
    assert t.relative is None and t.num_labels == 16
