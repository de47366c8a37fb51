import torch

from equissl.transforms import get_transformation


def test_grayscale_gives_the_luminance_on_three_equal_channels():
    t = get_transformation("grayscale", 5)
    x = torch.rand(4, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 1, 0])
    out = t.apply(x, labels)
    assert torch.equal(out[labels == 0], x[labels == 0])
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    for i in (1, 2):
        for c in range(3):
            torch.testing.assert_close(out[i, c], luma[i], rtol=0, atol=1e-6)
    assert torch.equal(out[1, 0], out[1, 2])
    assert t.relative is None and t.num_labels == 2


def test_grayscale_of_one_channel_images_is_the_identity():
    t = get_transformation("grayscale", 5, channels=1)
    x = torch.rand(2, 1, 5, 5)
    assert torch.equal(t.apply(x, torch.tensor([1, 1])), x)


def test_invert_is_an_involution():
    t = get_transformation("invert", 5)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (3, 3, 5, 5), generator=g).float() / 256
    ones = torch.ones(3, dtype=torch.long)
    assert torch.equal(t.apply(x, ones), 1 - x)
    assert torch.equal(t.apply(t.apply(x, ones), ones), x)
    assert torch.equal(t.apply(x, torch.zeros(3, dtype=torch.long)), x)
    y = torch.rand(3, 3, 5, 5, generator=g)  # not dyadic: exact up to rounding
    torch.testing.assert_close(t.apply(t.apply(y, ones), ones), y, rtol=0, atol=1e-7)
