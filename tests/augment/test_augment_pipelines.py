"""The named pipelines: shapes, ranges, reproducibility, probabilities, returned parameters."""

import pytest
import torch
import torch.nn.functional as F

from equissl.augment import PIPELINES, build_augment, to_float
from equissl.augment.color import adjust_brightness, grayscale
from equissl.augment.crop import resized_crop
from equissl.errors import ConfigError

FULL = {"scale": (1.0, 1.0), "ratio": (1.0, 1.0)}  # every crop is the whole (square) image


def _images(n=64, channels=3, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", PIPELINES)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(("in_size", "size"), [(32, 32), (32, 16), (96, 64)])
def test_shape_dtype_range(name, channels, in_size, size):
    images = _images(n=40 if in_size == 96 else 200, channels=channels, size=in_size)
    views = build_augment(name, size)(images, _gen())
    assert views.shape == (images.shape[0], channels, size, size)
    assert views.dtype == torch.float32
    assert views.min() >= 0 and views.max() <= 1


@pytest.mark.parametrize("name", ["simclr", "cropflip"])
def test_same_seed_same_views_other_seed_other_views(name):
    images, augment = _images(), build_augment(name, 32)
    a, pa = augment(images, _gen(5), return_params=True)
    b, pb = augment(images, _gen(5), return_params=True)
    assert torch.equal(a, b)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not torch.equal(a, augment(images, _gen(6)))


def test_resuming_from_a_saved_generator_state():
    images, augment = _images(), build_augment("simclr", 32)
    g = _gen(1)
    augment(images, g)
    state = g.get_state()
    expected = augment(images, g)
    assert torch.equal(augment(images, torch.Generator().set_state(state)), expected)


def test_none_is_plain_conversion_or_antialiased_resize():
    images = _images()
    assert torch.equal(build_augment("none", 32)(images, _gen()), to_float(images))
    expected = F.interpolate(to_float(images), size=(16, 16), mode="bilinear", antialias=True)
    torch.testing.assert_close(build_augment("none", 16)(images, _gen()), expected)


def test_nothing_happens_with_probability_zero():
    images = _images()
    kept = build_augment("simclr", 32, flip_p=0.0, jitter_p=0.0, gray_p=0.0, **FULL)
    views, params = kept(images, _gen(), return_params=True)
    assert torch.equal(views, to_float(images))
    assert not params["flipped"].any() and not params["gray"].any()
    assert torch.equal(params["jitter"], torch.tensor([[1.0, 1.0, 1.0, 0.0]]).expand(64, 4))


def test_everything_happens_with_probability_one():
    images = _images()
    augment = build_augment("simclr", 32, flip_p=1.0, jitter_p=1.0, gray_p=1.0, **FULL)
    views, params = augment(images, _gen(), return_params=True)
    assert params["flipped"].all() and params["gray"].all()
    assert (params["jitter"] != torch.tensor([1.0, 1.0, 1.0, 0.0])).all()
    assert (views == views[:, :1]).all()  # grayscale: equal channels


def test_flip_probability_and_effect():
    images = _images(n=4096, size=8)
    views, params = build_augment("cropflip", 8, **FULL)(images, _gen(), return_params=True)
    flipped = params["flipped"]
    assert abs(flipped.float().mean().item() - 0.5) < 0.05
    expected = torch.where(flipped.view(-1, 1, 1, 1), to_float(images).flip(-1), to_float(images))
    torch.testing.assert_close(views, expected, atol=1e-6, rtol=0)


def test_jitter_and_gray_probabilities():
    images = _images(n=4096, size=4)
    _, params = build_augment("simclr", 4)(images, _gen(), return_params=True)
    jittered = (params["jitter"] != torch.tensor([1.0, 1.0, 1.0, 0.0])).any(1)
    assert abs(jittered.float().mean().item() - 0.8) < 0.05
    assert abs(params["gray"].float().mean().item() - 0.2) < 0.05


def test_cropflip_views_follow_the_returned_boxes_and_flips():
    images = _images()
    views, params = build_augment("cropflip", 24)(images, _gen(), return_params=True)
    expected = resized_crop(images, params["boxes"], 24, params["flipped"])
    torch.testing.assert_close(views, expected, atol=1e-6, rtol=0)
    assert torch.equal(params["boxes"], params["boxes"].round())


def test_simclr_views_follow_the_returned_parameters():
    # Brightness only, so the (per-call) order of the jitter ops does not matter.
    images = _images()
    augment = build_augment("simclr", 24, jitter=(0.4, 0.0, 0.0, 0.0), jitter_p=0.5, gray_p=0.3)
    views, params = augment(images, _gen(), return_params=True)
    expected = resized_crop(images, params["boxes"], 24, params["flipped"])
    expected = adjust_brightness(expected, params["jitter"][:, 0])
    expected = torch.where(params["gray"].view(-1, 1, 1, 1), grayscale(expected), expected)
    torch.testing.assert_close(views, expected, atol=1e-6, rtol=0)
    assert torch.all(params["jitter"][:, 1:] == torch.tensor([1.0, 1.0, 0.0]))


def test_simclr_without_colour_equals_cropflip():
    images = _images()
    plain = build_augment("cropflip", 32)(images, _gen(3))
    no_colour = build_augment("simclr", 32, jitter_p=0.0, gray_p=0.0)(images, _gen(3))
    assert torch.equal(plain, no_colour)


def test_one_channel_jitters_brightness_and_contrast_only():
    images = _images(channels=1)
    augment = build_augment("simclr", 32, jitter_p=1.0, gray_p=1.0)
    views, params = augment(images, _gen(), return_params=True)
    assert not params["gray"].any()
    assert torch.all(params["jitter"][:, 2:] == torch.tensor([1.0, 0.0]))
    assert (params["jitter"][:, :2] != 1).all()
    assert views.shape == (64, 1, 32, 32)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "autoaugment"},
        {"size": 0},
        {"scale": (0.5, 0.2)},
        {"ratio": (0.0, 1.0)},
        {"flip_p": 1.5},
        {"gray_p": -0.1},
        {"jitter": (0.4, 0.4, 0.4, 0.6)},
    ],
)
def test_invalid_settings_are_config_errors(kwargs):
    args = {"name": "simclr", "size": 32, **kwargs}
    with pytest.raises(ConfigError):
        build_augment(args.pop("name"), args.pop("size"), **args)


def test_rejects_float_images():
    with pytest.raises(ValueError, match="uint8"):
        build_augment("simclr", 32)(torch.rand(2, 3, 32, 32), _gen())
