import pytest
import torch

from equissl.errors import ConfigError
from equissl.transforms import TRANSFORMS, Transformation, get_transformation

PRODUCTS = ("rotation+hflip", "rotation+jigsaw", "grayscale+blur", "invert+rotflip")


def test_base_names_and_sizes():
    sizes = {"rotation": 4, "hflip": 2, "vflip": 2, "rotflip": 8, "jigsaw": 24}
    sizes |= {"grayscale": 2, "invert": 2, "blur": 4, "blur_fixed": 4, "blur8": 8}
    assert set(TRANSFORMS) == set(sizes)
    for name, k in sizes.items():
        t = get_transformation(name, 8)
        assert isinstance(t, Transformation) and t.name == name and t.num_labels == k


def test_transformations_are_cached():
    assert get_transformation("jigsaw", 8) is get_transformation("jigsaw", 8, 3)
    assert get_transformation("jigsaw", 8) is not get_transformation("jigsaw", 10)
    assert get_transformation("rotation+hflip", 8) is get_transformation("rotation + hflip", 8)


@pytest.mark.parametrize("name", ["spin", "rotation+spin", "", "rotation+"])
def test_unknown_names_raise_a_one_line_config_error(name):
    with pytest.raises(ConfigError) as info:
        get_transformation(name, 8)
    message = str(info.value)
    assert "\n" not in message
    assert all(valid in message for valid in TRANSFORMS)


def test_bad_sizes_raise_config_error():
    with pytest.raises(ConfigError):
        get_transformation("rotation", 1)
    with pytest.raises(ConfigError):
        get_transformation("grayscale", 8, channels=2)


def test_sample_is_uniform_and_reproducible():
    t = get_transformation("jigsaw", 8)
    labels = t.sample(24_000, torch.Generator().manual_seed(0), "cpu")
    assert labels.dtype == torch.long and labels.shape == (24_000,)
    counts = torch.bincount(labels, minlength=24).double()
    assert counts.shape == (24,)
    chi2 = ((counts - 1000) ** 2 / 1000).sum()
    p = torch.special.gammaincc(torch.tensor(23 / 2, dtype=torch.float64), chi2 / 2)
    assert p > 0.001, (chi2, p)
    again = t.sample(24_000, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.equal(labels, again)
    other = t.sample(24_000, torch.Generator().manual_seed(1))
    assert not torch.equal(labels, other)


@pytest.mark.parametrize("name", [*TRANSFORMS, *PRODUCTS])
def test_expand_gives_blocks_in_label_order(name):
    t = get_transformation(name, 8)
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out, labels = t.expand(x)
    k = t.num_labels
    assert out.shape == (3 * k, 3, 8, 8)
    assert torch.equal(labels, torch.arange(k).repeat_interleave(3))
    for label in (0, k // 2, k - 1):
        block = out[label * 3 : (label + 1) * 3]
        assert torch.equal(block, t.apply(x, torch.full((3,), label)))
    assert torch.equal(out[:3], x)  # label 0 is the identity


@pytest.mark.parametrize("name", [*TRANSFORMS, *PRODUCTS])
def test_mixed_labels_in_one_batch_match_per_sample_application(name):
    t = get_transformation(name, 8)
    n = 12
    g = torch.Generator().manual_seed(3)
    x = torch.rand(n, 3, 8, 8, generator=g)
    labels = t.sample(n, g)
    out = t.apply(x, labels)
    for i in range(n):
        single = t.apply(x[i : i + 1], labels[i : i + 1])
        torch.testing.assert_close(out[i : i + 1], single, atol=1e-6, rtol=0)
        if t.relative is not None:  # pixel permutations and inversion are exact
            assert torch.equal(out[i : i + 1], single)


@pytest.mark.parametrize("name", [*TRANSFORMS, *PRODUCTS])
def test_apply_reads_no_tensor_data_on_the_host(name):
    """On the meta device (shapes only) any .item(), .tolist(), nonzero or boolean mask
    would raise: `apply` needs no host-device sync."""
    t = get_transformation(name, 8)
    x = torch.empty(5, 3, 8, 8, device="meta")
    labels = torch.empty(5, dtype=torch.long, device="meta")
    out = t.apply(x, labels)
    assert out.shape == x.shape and out.device.type == "meta"


def test_apply_rejects_images_of_another_size():
    with pytest.raises(ValueError, match="8, 8"):
        get_transformation("rotation", 8).apply(torch.rand(1, 3, 6, 6), torch.zeros(1).long())
