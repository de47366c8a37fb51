"""Bicubic random resized crops, as torchvision's `RandomResizedCrop(interpolation=BICUBIC)`
computes them on PIL images (E-SSL's ImageNet views, rdangovs/essl `imagenet/simclr/main.py`
`Transform` read at 359b27c, and its CIFAR-10 linear evaluation, `cifar10/main.py` `eval_loop`
read at 3522cd0): PIL's `ImagingResample` with the bicubic filter (a = -0.5), the filter
stretched by the scale factor when shrinking, weights normalised over the pixels of the crop.
The reference is written here from that algorithm, one output pixel at a time, in float64."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from equissl.augment.crop import resized_crop


def pil_cubic(x: float, a: float = -0.5) -> float:
    x = abs(x)
    if x < 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def pil_weights(in_size: int, out_size: int) -> np.ndarray:
    """PIL `precompute_coeffs`: centre (o + 0.5) scale, support 2 max(scale, 1), pixels from
    int(centre - support + 0.5) to int(centre + support + 0.5) clipped to the input, weights
    cubic((p - centre + 0.5) / max(scale, 1)) normalised."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    w = np.zeros((out_size, in_size))
    for o in range(out_size):
        centre = (o + 0.5) * scale
        lo = max(int(math.floor(centre - support + 0.5)), 0)
        hi = min(int(math.floor(centre + support + 0.5)), in_size)
        for p in range(lo, hi):
            w[o, p] = pil_cubic((p - centre + 0.5) / filterscale)
        w[o] /= w[o].sum()
    return w


def reference_crop(image: np.ndarray, box, size: int, flip: bool) -> np.ndarray:
    top, left, h, w = box
    region = image[:, top : top + h, left : left + w]
    out = np.einsum("oh,chw,pw->cop", pil_weights(h, size), region, pil_weights(w, size))
    return out[:, :, ::-1] if flip else out


@pytest.mark.parametrize(
    "box,size", [((3, 5, 20, 14), 8), ((0, 0, 6, 9), 16), ((1, 2, 30, 30), 29), ((4, 1, 7, 25), 11)]
)
def test_bicubic_crop_matches_pils_resampling(box, size):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64)
    boxes = torch.tensor([box, box], dtype=torch.float32)
    flips = torch.tensor([False, True])
    got = resized_crop(images, boxes, size, flips, interpolation="bicubic")
    for i in range(2):
        want = reference_crop(images[i].numpy(), box, size, bool(flips[i]))
        np.testing.assert_allclose(got[i].numpy(), want, atol=1e-5)  # float32 weights
    # torch's antialiased bicubic is the same algorithm
    top, left, h, w = box
    region = images[:1, :, top : top + h, left : left + w]
    torch_aa = F.interpolate(region, (size, size), mode="bicubic", antialias=True)
    assert torch.allclose(got[:1].double(), torch_aa, atol=1e-5)
    # mutation check: the bilinear crop (equissl's previous and default resampling) differs
    bilinear = resized_crop(images, boxes, size, flips)
    assert (bilinear - got).abs().max() > 1e-3


def test_bicubic_uint8_views_are_clamped_to_unit_range():
    images = torch.zeros(1, 1, 16, 16, dtype=torch.uint8)
    images[..., 8:] = 255  # a step edge overshoots under a cubic filter
    boxes = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    out = resized_crop(images, boxes, 37, interpolation="bicubic")
    assert float(out.min()) >= 0 and float(out.max()) <= 1
