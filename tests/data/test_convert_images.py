"""Channel conversion (BT.601 luminance, replication) and antialiased resizing of uint8 sets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import equissl.data.convert as convert
from equissl.data.convert import resize, to_channels


def test_luminance_exact_values():
    pixels = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (10, 20, 30), (255, 255, 255), (1, 1, 1)]
    rgb = torch.tensor(pixels, dtype=torch.uint8).T.reshape(1, 3, 1, len(pixels))
    grey = to_channels(rgb, 1)
    assert grey.shape == (1, 1, 1, 6) and grey.dtype == torch.uint8
    assert grey.flatten().tolist() == [76, 150, 29, 18, 255, 1]


def test_grey_replicated_to_rgb():
    grey = torch.randint(0, 256, (4, 1, 5, 3), dtype=torch.uint8)
    rgb = to_channels(grey, 3)
    assert rgb.shape == (4, 3, 5, 3) and rgb.is_contiguous()
    assert all(torch.equal(rgb[:, c], grey[:, 0]) for c in range(3))
    assert to_channels(rgb, 3) is rgb


def test_resize_matches_float_interpolation_rounded(monkeypatch):
    monkeypatch.setattr(convert, "CHUNK", 3)  # several chunks
    images = torch.randint(0, 256, (7, 3, 12, 12), dtype=torch.uint8)
    small = resize(images, 5)
    reference = F.interpolate(images.float(), (5, 5), mode="bilinear", antialias=True)
    assert small.shape == (7, 3, 5, 5) and small.dtype == torch.uint8
    assert torch.equal(small, reference.round().clamp(0, 255).to(torch.uint8))
    assert resize(images, 12) is images


@pytest.mark.parametrize("size", [3, 17])
def test_resize_keeps_constant_images(size):
    images = torch.full((2, 1, 8, 8), 200, dtype=torch.uint8)
    assert torch.equal(resize(images, size), torch.full((2, 1, size, size), 200, dtype=torch.uint8))
