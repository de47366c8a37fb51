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
    ("name", "size"), [("blur", 32), ("blur", 16), ("blur8", 32), ("blur8", 16)]
)
def test_blur_levels_smooth_strictly_more_and_level_0_is_exact(name, size):
    t = get_transformation(name, size)
    assert t.relative is None and t.num_labels == {"blur": 4, "blur8": 8}[name]
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    out, labels = t.expand(x)
    assert torch.equal(out[0:1], x)
    tv = total_variation(out)
    assert (tv[1:] < tv[:-1]).all(), tv


def test_blur_matches_an_independent_reference():
    t = get_transformation("blur", 32)
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
