import math

import pytest
import torch
import torch.nn.functional as F

from equissl.transforms import get_transformation
from equissl.transforms.blur import kernel_sizes, sigma_for


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Per-image total variation (N,)."""
    dh = (x[..., 1:, :] - x[..., :-1, :]).abs().sum((1, 2, 3))
    dw = (x[..., :, 1:] - x[..., :, :-1]).abs().sum((1, 2, 3))
    return dh + dw


def reference_blur(x: torch.Tensor, k: int) -> torch.Tensor:
    """Independent 2-D reference: the outer-product Gaussian, reflect padding via F.pad."""
    sigma = 0.3 * ((k - 1) / 2 - 1) + 0.8
    g = torch.tensor([math.exp(-((i - (k - 1) / 2) ** 2) / (2 * sigma**2)) for i in range(k)])
    g = (g / g.sum()).double()
    kernel = (g[:, None] * g[None, :]).expand(x.shape[1], 1, k, k)
    padded = F.pad(x.double(), (k // 2,) * 4, mode="reflect")
    return F.conv2d(padded, kernel, groups=x.shape[1]).float()


def test_kernel_sizes_scale_with_the_image():
    assert kernel_sizes((5, 9, 15), 32) == (5, 9, 15)
    assert kernel_sizes((5, 9, 15), 16) == (3, 5, 7)
    assert kernel_sizes((5, 9, 15), 64) == (11, 19, 31)
    assert kernel_sizes((3, 5, 7, 9, 11, 13, 15), 16) == (3, 5, 7, 9, 11, 13, 15)
    assert kernel_sizes((3, 5, 7, 9, 11, 13, 15), 32) == (3, 5, 7, 9, 11, 13, 15)
    assert sigma_for(3) == pytest.approx(0.8) and sigma_for(15) == pytest.approx(2.6)


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("blur", 32),
        ("blur", 16),
        ("blur_fixed", 32),
        ("blur_fixed", 16),
        ("blur8", 32),
        ("blur8", 16),
    ],
)
def test_blur_levels_smooth_strictly_more_and_level_0_is_exact(name, size):
    t = get_transformation(name, size)
    assert t.relative is None and t.num_labels == {"blur": 4, "blur_fixed": 4, "blur8": 8}[name]
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    out, labels = t.expand(x)
    assert torch.equal(out[0:1], x)
    tv = total_variation(out)
    assert (tv[1:] < tv[:-1]).all(), tv


def test_fixed_blur_matches_an_independent_reference():
    t = get_transformation("blur_fixed", 32)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([1, 2, 3])
    out = t.apply(x, labels)
    for i, k in enumerate((5, 9, 15)):
        torch.testing.assert_close(
            out[i : i + 1], reference_blur(x[i : i + 1], k), atol=1e-5, rtol=0
        )


def test_blur_pads_wider_than_the_image_and_preserves_constants():
    t = get_transformation("blur8", 4)  # largest kernel 15: padding 7 > 4 pixels
    x = torch.full((8, 1, 4, 4), 0.25)
    torch.testing.assert_close(t.apply(x, torch.arange(8)), x, atol=1e-6, rtol=0)


def torchvision_blur(x: torch.Tensor, k: int, sigma: float) -> torch.Tensor:
    """torchvision's `gaussian_blur` written out in float64 for one image: the 1-D kernel
    exp(-x^2 / (2 sigma^2)) on x = -(k-1)/2 .. (k-1)/2, normalised; its outer product; reflect
    padding of (k-1)/2 pixels; a depthwise convolution."""
    i = torch.arange(k, dtype=torch.float64) - (k - 1) / 2
    g = torch.exp(-(i**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(x.shape[1], 1, k, k)
    padded = F.pad(x.double(), ((k - 1) // 2,) * 4, mode="reflect")
    return F.conv2d(padded, kernel, groups=x.shape[1])


def test_blur_draws_wang_et_al_sigma_per_image():
    """Reference: kaotty/Understanding-ESSL at 3005032, ESSL/equivariant_tasks.py, class
    GaussianBlur.forward: label r in 0..3; r = 1, 2, 3 apply torchvision
    transforms.GaussianBlur(kernel_size=5, 9, 15) with its default sigma=(0.1, 2.0), whose
    get_params draws sigma ~ U(0.1, 2.0) for each call, i.e. each image. The sigmas here are
    the documented draw from the same generator: 0.1 + 1.9 u, u = torch.rand(N)."""
    t = get_transformation("blur", 32)
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 1, 2, 3, 3])
    out = t.apply_drawn(x, labels, torch.Generator().manual_seed(5))
    sigmas = 0.1 + 1.9 * torch.rand(8, generator=torch.Generator().manual_seed(5))
    assert sigmas.std() > 0.3  # the draw spreads over the range
    for i, label in enumerate(labels.tolist()):
        want = (
            x[i : i + 1]
            if label == 0
            else torchvision_blur(x[i : i + 1], (0, 5, 9, 15)[label], sigmas[i].item())
        )
        torch.testing.assert_close(out[i : i + 1], want, atol=1e-12, rtol=0)
    # Mutation check: equissl's earlier fixed sigmas (1.1 / 1.7 / 2.6, now `blur_fixed`) differ.
    fixed = get_transformation("blur_fixed", 32).apply(x, labels)
    assert (fixed[1:] - out[1:]).abs().amax((1, 2, 3)).min() > 1e-3


def test_blur_without_a_generator_uses_the_midpoint_sigma():
    t = get_transformation("blur", 32)
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = t.apply(x, torch.tensor([1, 2, 3]))
    for i, k in enumerate((5, 9, 15)):
        torch.testing.assert_close(out[i : i + 1], torchvision_blur(x[i : i + 1], k, 1.05))


def test_product_and_terms_pass_the_generator_to_the_blur():
    t = get_transformation("rotation+blur", 16)
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    labels = torch.tensor([1, 2, 3, 7])
    a = t.apply_drawn(x, labels, torch.Generator().manual_seed(0))
    b = t.apply_drawn(x, labels, torch.Generator().manual_seed(1))
    assert not torch.allclose(a, b) and torch.equal(
        a, t.apply_drawn(x, labels, torch.Generator().manual_seed(0))
    )
    rotation = get_transformation("rotation", 16)
    assert rotation.apply_drawn(x, labels % 4, torch.Generator()).equal(
        rotation.apply(x, labels % 4)
    )
