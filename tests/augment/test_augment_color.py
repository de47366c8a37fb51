"""Colour ops against naive per-image formulas (and the stdlib's colorsys for HSV)."""

import colorsys

import pytest
import torch

from equissl.augment.color import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    color_jitter_,
    grayscale,
    jitter_ranges,
    sample_jitter_factors,
)

WEIGHTS = (0.299, 0.587, 0.114)


def _batch(n=6, channels=3, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, channels, size, size), generator=g).float() / 255
    x[0] = 0.5  # gray image: no hue at all
    if channels == 3:
        x[1, 1] = x[1, 0]  # ties between channels
        x[2, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0])
    return x


def _gray(img):
    return WEIGHTS[0] * img[0] + WEIGHTS[1] * img[1] + WEIGHTS[2] * img[2]


def test_brightness_scales_and_clamps():
    x, f = _batch(), torch.tensor([0.6, 1.0, 1.4, 0.0, 1.2, 0.9])
    expected = torch.stack([(img * k).clamp(0, 1) for img, k in zip(x, f, strict=True)])
    torch.testing.assert_close(adjust_brightness(x, f), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("channels", [1, 3])
def test_contrast_blends_with_the_gray_mean(channels):
    x, f = _batch(channels=channels), torch.tensor([0.6, 1.0, 1.4, 0.0, 1.2, 0.9])
    expected = []
    for img, k in zip(x, f, strict=True):
        mean = (_gray(img) if channels == 3 else img[0]).mean()
        expected.append((k * img + (1 - k) * mean).clamp(0, 1))
    torch.testing.assert_close(adjust_contrast(x, f), torch.stack(expected), atol=1e-6, rtol=0)


def test_saturation_blends_with_grayscale():
    x, f = _batch(), torch.tensor([0.6, 1.0, 1.4, 0.0, 1.2, 0.9])
    expected = torch.stack(
        [(k * img + (1 - k) * _gray(img)).clamp(0, 1) for img, k in zip(x, f, strict=True)]
    )
    torch.testing.assert_close(adjust_saturation(x, f), expected, atol=1e-6, rtol=0)
    assert torch.equal(adjust_saturation(x, torch.ones(6)), x)


def test_saturation_zero_is_grayscale():
    x = _batch()
    out = adjust_saturation(x, torch.zeros(6))
    expected = torch.stack([_gray(img).expand(3, -1, -1) for img in x])
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(grayscale(x), expected, atol=1e-6, rtol=0)
    assert (grayscale(x) == grayscale(x)[:, :1]).all()


def test_hue_matches_colorsys():
    x, shift = _batch(), torch.tensor([0.3, -0.1, 0.5, -0.5, 0.05, 0.0])
    out = adjust_hue(x, shift)
    expected = torch.empty_like(x)
    for i in range(x.shape[0]):
        pixels = x[i].reshape(3, -1).T.double().tolist()
        for j, (r, g, b) in enumerate(pixels):
            h, s, v = colorsys.rgb_to_hsv(r, g, b)
            rgb = colorsys.hsv_to_rgb((h + shift[i].item()) % 1.0, s, v)
            expected[i].view(3, -1)[:, j] = torch.tensor(rgb)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_hue_zero_is_identity_and_shifts_round_trip():
    x = _batch(n=8, size=16, seed=1)
    shift = torch.linspace(-0.5, 0.5, 8)
    torch.testing.assert_close(adjust_hue(x, torch.zeros(8)), x, atol=1e-6, rtol=0)
    torch.testing.assert_close(adjust_hue(adjust_hue(x, shift), -shift), x, atol=1e-5, rtol=0)
    assert (adjust_hue(x, shift) - x).abs().max() > 0.1
    assert adjust_hue(x, shift).min() >= 0 and adjust_hue(x, shift).max() <= 1


def test_hue_keeps_value_and_chroma():
    x = _batch(n=8, size=16, seed=2)
    out = adjust_hue(x, torch.full((8,), 0.37))
    torch.testing.assert_close(out.amax(1), x.amax(1), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.amin(1), x.amin(1), atol=1e-6, rtol=0)


def test_jitter_applies_ops_in_the_given_order():
    x = _batch()
    factors = torch.tensor([[1.3, 0.7, 1.4, 0.2]]).expand(6, 4)
    ops = {0: adjust_brightness, 1: adjust_contrast, 2: adjust_saturation, 3: adjust_hue}
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
        expected = x
        for op in order:
            expected = ops[op](expected, factors[:, op])
        torch.testing.assert_close(color_jitter_(x.clone(), factors, order), expected)


def test_jitter_factor_ranges():
    strength = (0.4, 1.5, 0.0, 0.1)
    ranges = jitter_ranges(strength)
    assert ranges == ((0.6, 1.4), (0.0, 2.5), (1.0, 1.0), (-0.1, 0.1))
    factors = sample_jitter_factors(4096, strength, torch.Generator().manual_seed(0))
    for k, (lo, hi) in enumerate(ranges):
        assert factors[:, k].min() >= lo - 1e-6 and factors[:, k].max() <= hi + 1e-6
    assert factors[:, 0].min() < 0.62 and factors[:, 0].max() > 1.38
    assert torch.all(factors[:, 2] == 1)
