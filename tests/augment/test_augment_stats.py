"""uint8 conversion, normalisation and dataset channel statistics."""

import pytest
import torch

from equissl.augment import channel_stats, normalize, to_float


def test_to_float_maps_0_255_onto_0_1():
    images = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    out = to_float(images)
    assert out.dtype == torch.float32
    assert out.min() == 0 and out.max() == 1
    torch.testing.assert_close(out, images.float() / 255, atol=1e-7, rtol=0)
    with pytest.raises(TypeError):
        to_float(out)


def test_normalize_per_channel():
    x = torch.rand(4, 3, 5, 5)
    mean, std = torch.tensor([0.1, 0.5, 0.9]), torch.tensor([0.2, 0.3, 0.4])
    out = normalize(x, mean, std)
    for c in range(3):
        torch.testing.assert_close(out[:, c], (x[:, c] - mean[c]) / std[c])
    torch.testing.assert_close(normalize(x[0], mean, std), out[0])  # (C, H, W) too


@pytest.mark.parametrize("channels", [1, 3])
def test_channel_stats_match_a_direct_float64_computation(channels):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (50, channels, 7, 9), dtype=torch.uint8, generator=g)
    images[:, 0] //= 2  # channels with different statistics
    mean, std = channel_stats(images, batch=8)  # several chunks, the last one partial
    x = images.double() / 255
    torch.testing.assert_close(mean, x.mean(dim=(0, 2, 3)).float())
    torch.testing.assert_close(std, x.std(dim=(0, 2, 3), unbiased=False).float())
    assert mean.shape == std.shape == (channels,)
