"""Crop boxes and the fused crop/resize/flip against direct slicing + F.interpolate."""

import math

import pytest
import torch
import torch.nn.functional as F

from equissl.augment import sample_crop_boxes, to_float
from equissl.augment.crop import resized_crop


def _images(n, channels, height, width, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, height, width), dtype=torch.uint8, generator=g)


def _reference(images, box, size):
    """Slice the box out of every image, then bilinear-resize it (no antialias)."""
    top, left, h, w = box
    crop = to_float(images[:, :, top : top + h, left : left + w])
    return F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)


def test_boxes_are_whole_pixels_inside_the_image():
    boxes = sample_crop_boxes(4096, 32, 40, (0.2, 1.0), (3 / 4, 4 / 3), torch.Generator(), "cpu")
    top, left, h, w = boxes.unbind(1)
    assert boxes.shape == (4096, 4) and boxes.dtype == torch.float32
    assert torch.equal(boxes, boxes.round())
    assert (top >= 0).all() and (left >= 0).all() and (h >= 1).all() and (w >= 1).all()
    assert (top + h <= 32).all() and (left + w <= 40).all()
    assert len(set(map(tuple, boxes.tolist()))) > 1000  # they do vary


def test_boxes_respect_area_and_ratio_bounds():
    # Large images make the rounding of h and w to whole pixels negligible.
    scale, ratio = (0.2, 0.7), (3 / 4, 4 / 3)
    boxes = sample_crop_boxes(4096, 1000, 1000, scale, ratio, torch.Generator(), "cpu")
    h, w = boxes[:, 2], boxes[:, 3]
    area = h * w / 1e6
    assert area.min() >= scale[0] * 0.99 and area.max() <= scale[1] * 1.01
    assert (w / h).min() >= ratio[0] * 0.99 and (w / h).max() <= ratio[1] * 1.01
    # log-aspect is uniform on [log 3/4, log 4/3]: about half the boxes are wider than tall
    assert abs((w > h).float().mean().item() - 0.5) < 0.05


def test_boxes_fall_back_to_a_central_crop():
    # A 4:1 to 5:1 aspect never fits a square image: torchvision's fallback keeps the full
    # width and the height of the closest allowed ratio, centred.
    boxes = sample_crop_boxes(8, 32, 32, (0.9, 1.0), (4.0, 5.0), torch.Generator(), "cpu")
    assert torch.equal(boxes, torch.tensor([[12.0, 0.0, 8.0, 32.0]]).expand(8, 4))


def test_boxes_are_reproducible():
    def draw(seed):
        return sample_crop_boxes(
            64, 32, 32, (0.2, 1), (0.75, 4 / 3), torch.Generator().manual_seed(seed)
        )

    assert torch.equal(draw(3), draw(3))
    assert not torch.equal(draw(3), draw(4))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [32, 16])
def test_whole_image_box_is_the_identity_or_a_plain_resize(channels, size):
    images = _images(4, channels, 32, 32)
    boxes = torch.tensor([[0.0, 0.0, 32.0, 32.0]]).expand(4, 4)
    out = resized_crop(images, boxes, size)
    if size == 32:
        assert torch.equal(out, to_float(images))  # bit for bit
    torch.testing.assert_close(out, _reference(images, (0, 0, 32, 32), size), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("hw", "box", "size"),
    [
        (32, (3, 5, 20, 17), 16),  # downscale
        (32, (7, 2, 10, 12), 32),  # upscale: edges clamp to the box, not the image
        (32, (0, 9, 32, 23), 24),
        (96, (10, 20, 70, 64), 64),
        (224, (50, 61, 150, 131), 112),
    ],
)
def test_known_box_matches_interpolate_of_the_slice(hw, box, size):
    images = _images(3, 3, hw, hw)
    boxes = torch.tensor([box], dtype=torch.float32).expand(3, 4)
    out = resized_crop(images, boxes, size)
    torch.testing.assert_close(out, _reference(images, box, size), atol=1e-5, rtol=0)


def test_non_square_images():
    images = _images(3, 3, 24, 40)
    box = (2, 11, 20, 25)
    boxes = torch.tensor([box], dtype=torch.float32).expand(3, 4)
    out = resized_crop(images, boxes, 16, torch.tensor([False, True, False]))
    expected = _reference(images, box, 16)
    expected[1] = expected[1].flip(-1)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_float_images_keep_their_units():
    images = _images(2, 3, 32, 32)
    boxes = torch.tensor([[3.0, 5.0, 20.0, 17.0]]).expand(2, 4)
    out = resized_crop(images.float(), boxes, 16)
    torch.testing.assert_close(out / 255, _reference(images, (3, 5, 20, 17), 16), atol=1e-5, rtol=0)


def test_flip_mirrors_the_output():
    images = _images(6, 3, 32, 32)
    boxes = sample_crop_boxes(6, 32, 32, (0.2, 1.0), (3 / 4, 4 / 3), torch.Generator())
    flipped = torch.tensor([True, False, True, True, False, False])
    plain = resized_crop(images, boxes, 24)
    out = resized_crop(images, boxes, 24, flipped)
    expected = torch.where(flipped.view(-1, 1, 1, 1), plain.flip(-1), plain)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert not torch.allclose(out[0], plain[0])


def test_output_is_in_range():
    images = torch.full((8, 3, 32, 32), 255, dtype=torch.uint8)
    boxes = sample_crop_boxes(8, 32, 32, (0.05, 1.0), (0.5, 2.0), torch.Generator())
    out = resized_crop(images, boxes, 37)
    assert out.min() >= 0 and out.max() <= 1 and math.isclose(out.min().item(), 1.0, abs_tol=1e-6)
