"""Gaussian blur and solarisation of the invariance views (E-SSL's ImageNet views, CARE's CIFAR
views), against references written here.

Official code: rdangovs/essl `imagenet/simclr/utils.py` (read at 9957024) `GaussianBlur`: with
probability p, sigma = random.random() * 1.9 + 0.1, i.e. U(0.1, 2.0); `Solarization`: with
probability p, PIL `ImageOps.solarize(img)` (threshold 128 on uint8: i -> 255 - i for i >= 128).
`imagenet/simclr/main.py` (359b27c) `Transform`: blur then solarise after colour jitter and
grayscale, view 1 blur p 1.0 / solarise 0, view 2 blur 0.1 / solarise 0.2, the rotation crop
blur 0.1 / solarise 0. The blur reference is torchvision's `GaussianBlur` (taps at integer
offsets normalised to 1, reflect padding), which CARE's and Wang et al.'s code use.
"""

import numpy as np
import pytest
import torch

from equissl.app.config import build_config
from equissl.augment import build_augment
from equissl.augment.blur import blur_kernel_size, gaussian_blur
from equissl.augment.color import solarize_
from equissl.errors import ConfigError


def reference_blur(image: np.ndarray, sigma: float, kernel: int, mode: str = "reflect"):
    """One (C, H, W) float64 image: the 2-D kernel outer(g, g), g_j = exp(-j^2 / (2 sigma^2))
    for j = -(k-1)/2 .. (k-1)/2 normalised, applied by direct summation after padding."""
    half = kernel // 2
    j = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-0.5 * (j / sigma) ** 2)
    g /= g.sum()
    padded = np.pad(image, ((0, 0), (half, half), (half, half)), mode=mode)
    h, w = image.shape[1:]
    out = np.zeros_like(image)
    for dy in range(kernel):
        for dx in range(kernel):
            out += g[dy] * g[dx] * padded[:, dy : dy + h, dx : dx + w]
    return out


@pytest.mark.parametrize("kernel", [3, 5, 23])
def test_blur_matches_the_reference_per_image_sigma(kernel):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 13, 12, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.1, 0.7, 2.0], dtype=torch.float64)
    got = gaussian_blur(x, sigma, kernel)
    for i in range(3):
        want = reference_blur(x[i].numpy(), float(sigma[i]), kernel)
        np.testing.assert_allclose(got[i].numpy(), want, atol=1e-12)
    # mutation checks: zero padding, or one sigma for the whole batch, would differ
    zero = reference_blur(x[1].numpy(), 0.7, kernel, mode="constant")
    assert np.abs(got[1].numpy() - zero).max() > 1e-3
    one_sigma = gaussian_blur(x, sigma.new_full((3,), 0.7), kernel)
    assert (one_sigma[2] - got[2]).abs().max() > 1e-3


def test_blur_kernel_size_defaults_to_simclrs_tenth_made_odd():
    assert blur_kernel_size(0, 224) == 23  # int(22.4) = 22 -> 23
    assert blur_kernel_size(0, 32) == 3
    assert blur_kernel_size(3, 32) == 3
    assert blur_kernel_size(0, 4) == 1  # 0 -> 1: no blur on tiny views
    assert blur_kernel_size(23, 8) == 15  # reflect padding needs pad < size


def test_solarize_matches_pil_on_every_uint8_level_and_on_rounded_floats():
    levels = torch.arange(256, dtype=torch.float32)
    x = (levels / 255).view(1, 1, 16, 16)
    pil = torch.where(levels < 128, levels, 255 - levels) / 255  # ImageOps.solarize(img, 128)
    assert torch.allclose(solarize_(x.clone()).flatten(), pil, atol=1e-7)
    # A resampled float view: PIL rounds to uint8, then thresholds at 128. 0.501 rounds to 128.
    v = torch.tensor([0.4999, 0.5, 0.501, 0.5019]).view(1, 1, 2, 2)
    got = solarize_(v.clone()).flatten()
    assert torch.allclose(got, torch.tensor([0.4999, 0.5, 0.499, 0.4981]), atol=1e-6)
    # mutation check: a threshold of 128 / 255 on the float value misses 0.501
    assert not torch.isclose(torch.where(v >= 128 / 255, 1 - v, v).flatten()[2], got[2])


def _images(n=16, size=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def test_pipeline_order_blur_after_grayscale_then_solarise():
    """With p = 1 everywhere, the view equals: the plain pipeline's view, blurred with the
    drawn sigma, then solarised; the draws before the blur are the plain pipeline's."""
    images = _images()
    plain = build_augment("simclr", 12)
    full = build_augment("simclr", 12, blur_p=1.0, blur_kernel=5, solarize_p=1.0)
    base, p0 = plain(images, torch.Generator().manual_seed(3), return_params=True)
    got, p1 = full(images, torch.Generator().manual_seed(3), return_params=True)
    for key in ("boxes", "flipped", "jitter", "gray"):
        assert torch.equal(p0[key], p1[key])
    sigma = p1["blur_sigma"]
    assert bool(((sigma >= 0.1) & (sigma <= 2.0)).all()) and bool(p1["solarized"].all())
    want = solarize_(gaussian_blur(base, sigma, 5))
    assert torch.allclose(got, want, atol=1e-6)
    # mutation check: solarising before blurring gives other views
    assert (gaussian_blur(solarize_(base.clone()), sigma, 5) - got).abs().max() > 1e-2


def test_probabilities_select_images_and_off_draws_nothing_new():
    images = _images(n=400, size=8)
    aug = build_augment("cropflip", 8, blur_p=0.1, solarize_p=0.2)
    _, params = aug(images, torch.Generator().manual_seed(1), return_params=True)
    blurred = (params["blur_sigma"] > 0).float().mean()
    assert 0.05 < blurred < 0.15 and 0.14 < params["solarized"].float().mean() < 0.26
    # off (p = 0): the generator ends where it did without the options (existing streams hold)
    g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    build_augment("simclr", 8)(images, g1)
    build_augment("simclr", 8, blur_p=0.0, solarize_p=0.0, blur_kernel=3)(images, g2)
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))
    # same generator state, same views
    a = aug(images, torch.Generator().manual_seed(9))
    assert torch.equal(a, aug(images, torch.Generator().manual_seed(9)))


def test_config_builds_two_view_pipelines_and_rejects_bad_settings():
    from equissl.methods.build import make_augment

    cfg = build_config(["imagenet-esimclr"])
    a = cfg.augment
    views = [make_augment("simclr", 224, (0.08, 1.0), a, v) for v in (0, 1)]
    term = make_augment("simclr", 96, (0.05, 0.14), a)
    assert [v.blur_p for v in views] == [1.0, 0.1] and [v.solarize_p for v in views] == [0, 0.2]
    assert (term.blur_p, term.solarize_p, term.interpolation) == (0.1, 0.0, "bilinear")
    assert views[0].interpolation == "bicubic"
    for bad in (
        "augment.blur_p=[0.5]",
        "augment.blur_p=[0.5,1.5]",
        "augment.solarize_p=[-0.1,0]",
        "augment.blur_kernel=4",
        "augment.blur_sigma=[2.0,0.1]",
        "augment.term_blur_p=2",
        "augment.interpolation=nearest",
    ):
        with pytest.raises(ConfigError):
            build_config([], [bad])


def test_accelerator_path_processes_every_image_and_keeps_the_unselected(monkeypatch):
    """Off the CPU every image is blurred (unblurred ones with sigma 0: the identity) and a mask
    picks: the same views as the CPU's subset path."""
    import equissl.augment.pipelines as pipelines

    images = _images(n=24, size=10)
    aug = build_augment("simclr", 10, blur_p=0.5, blur_kernel=3, solarize_p=0.5)
    cpu = aug(images, torch.Generator().manual_seed(4))
    monkeypatch.setattr(pipelines, "_select_on_host", lambda device: False)
    masked = aug(images, torch.Generator().manual_seed(4))
    assert torch.isfinite(masked).all() and torch.allclose(masked, cpu, atol=1e-6)
    x = torch.rand(2, 3, 5, 5)
    assert torch.allclose(gaussian_blur(x, torch.zeros(2), 3), x)  # sigma 0: the identity
