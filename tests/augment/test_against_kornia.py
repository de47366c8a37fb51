"""Our fused colour kernels against kornia's implementations, an independent reference."""

import math

import kornia
import torch

from equissl.augment.color import adjust_contrast, adjust_hue, grayscale


def _images(n: int = 6) -> torch.Tensor:
    return torch.rand(n, 3, 9, 7, generator=torch.Generator().manual_seed(0))


def test_hue_shift_matches_kornia():
    x = _images()
    shift = torch.linspace(-0.5, 0.5, x.shape[0])  # turns; kornia takes radians
    ours = adjust_hue(x, shift)
    ref = kornia.enhance.adjust_hue(x, shift * 2 * math.pi)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_contrast_matches_kornia_mean_subtraction():
    x = _images()
    factor = torch.linspace(0.0, 1.8, x.shape[0])
    ours = adjust_contrast(x, factor)
    ref = kornia.enhance.adjust_contrast_with_mean_subtraction(x, factor).clamp(0, 1)
    assert torch.allclose(ours, ref, atol=1e-6)


def test_grayscale_matches_kornia():
    x = _images()
    assert torch.allclose(grayscale(x)[:, :1], kornia.color.rgb_to_grayscale(x), atol=1e-7)
