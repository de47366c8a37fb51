import colorsys
import io
import math

import pytest
import torch

from equissl.eval.corruptions import (
    _PARAMS,
    CORRUPTIONS,
    SEVERITIES,
    _defocus_kernel,
    _motion_kernels,
    corrupt,
    corruptions_for,
    jpeg_round_trip,
    psnr,
)

RANDOM = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "motion_blur", "fog")
DETERMINISTIC = tuple(name for name in CORRUPTIONS if name not in RANDOM)
BLURS = ("defocus_blur", "motion_blur", "zoom_blur", "gaussian_blur")


def natural_images(n: int = 16, channels: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Deterministic stand-ins for photos: a colour gradient, three flat shapes with hard
    edges, a sinusoidal texture and a little luminance noise."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=gen)

    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    angle = rand(n, 1, 1, 1) * 2 * math.pi
    ramp = (torch.cos(angle) * x + torch.sin(angle) * y + 1.5) / 3
    img = 0.2 + 0.6 * rand(n, channels, 1, 1) + 0.8 * (rand(n, channels, 1, 1) - 0.5) * ramp
    for shape in range(3):
        cy, cx, radius = rand(n, 1, 1, 1), rand(n, 1, 1, 1), 0.1 + 0.25 * rand(n, 1, 1, 1)
        if shape % 2 == 0:
            inside = (y - cy) ** 2 + (x - cx) ** 2 < radius**2
        else:
            inside = ((y - cy).abs() < radius) & ((x - cx).abs() < 0.6 * radius)
        img = torch.where(inside, rand(n, channels, 1, 1), img)
    freq = 10 + 20 * rand(n, 1, 1, 1)
    texture = 0.06 * torch.sin(freq * (x + 1.5 * y)) + 0.03 * torch.randn(
        n, 1, size, size, generator=gen
    )
    return (img + texture).clamp(0, 1)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return natural_images()


def assert_close(actual, expected, atol=1e-5):
    """Max-abs-error check (torch.testing.assert_close costs seconds of imports on first use)."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    error = (actual.double() - expected.double()).abs().max().item()
    assert error <= atol, f"max abs error {error:.3g} > {atol}"


def seeded(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def all_cases():
    return [(name, c) for c in (3, 1) for name in corruptions_for(c)]


def test_names_and_channels():
    required = {
        "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "motion_blur",
        "contrast", "brightness", "saturate", "pixelate", "jpeg_compression", "fog",
    }  # fmt: skip
    assert required <= set(CORRUPTIONS)
    assert SEVERITIES == 5
    assert all(len(values) == SEVERITIES for values in _PARAMS.values())
    assert corruptions_for(3) == CORRUPTIONS
    assert set(CORRUPTIONS) - set(corruptions_for(1)) == {"saturate"}


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_severity_zero_is_identity(images, name):
    out = corrupt(images, name, 0, seeded())
    assert torch.equal(out, images)
    assert out.data_ptr() != images.data_ptr()


@pytest.mark.parametrize("name", CORRUPTIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_shape_dtype_and_range(images, name, dtype):
    x = images[:4, :, :27, :21].to(dtype)  # odd sizes: not whole JPEG blocks or pixel blocks
    out = corrupt(x, name, SEVERITIES, seeded())
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, x)


@pytest.mark.parametrize(("name", "channels"), all_cases())
def test_psnr_strictly_decreases_with_severity(images, name, channels):
    x = images[:, :channels]
    scores = [psnr(corrupt(x, name, s, seeded()), x).mean().item() for s in range(1, 6)]
    assert all(a > b for a, b in zip(scores, scores[1:], strict=False)), scores


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_reproducible_with_seed(images, name):
    x = images[:4]
    first = corrupt(x, name, 3, seeded(7))
    assert torch.equal(first, corrupt(x, name, 3, seeded(7)))
    assert torch.equal(first, corrupt(x, name, 3, seeded(8))) == (name not in RANDOM)


@pytest.mark.parametrize("name", RANDOM)
def test_default_generator_follows_global_seed(images, name):
    torch.manual_seed(3)
    first = corrupt(images[:2], name, 2)
    torch.manual_seed(3)
    assert torch.equal(first, corrupt(images[:2], name, 2))


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_batched_equals_per_image(images, name):
    x = images[:6]
    batched = corrupt(x, name, 4)
    single = torch.cat([corrupt(x[i : i + 1], name, 4) for i in range(len(x))])
    assert_close(batched, single)


def test_gaussian_noise_std_matches_severity():
    grey = torch.full((8, 3, 32, 32), 0.5)
    for severity, std in enumerate(_PARAMS["gaussian_noise"], start=1):
        residual = corrupt(grey, "gaussian_noise", severity, seeded(severity)) - grey
        assert residual.std().item() == pytest.approx(std, rel=0.1)
        assert residual.mean().abs() < 0.01


def test_shot_noise_is_poisson():
    grey = torch.full((8, 3, 32, 32), 0.5)
    for severity, photons in enumerate(_PARAMS["shot_noise"], start=1):
        out = corrupt(grey, "shot_noise", severity, seeded(severity))
        counts = out * photons
        assert_close(counts, counts.round(), atol=1e-3)  # whole photons
        assert (out - grey).std().item() == pytest.approx(math.sqrt(0.5 / photons), rel=0.1)


def test_impulse_noise_sets_a_fraction_to_black_or_white():
    grey = torch.full((8, 3, 32, 32), 0.5)
    for severity, amount in enumerate(_PARAMS["impulse_noise"], start=1):
        out = corrupt(grey, "impulse_noise", severity, seeded(severity))
        changed = out != grey
        assert changed.float().mean().item() == pytest.approx(amount, rel=0.2)
        assert set(out[changed].unique().tolist()) == {0.0, 1.0}


def test_contrast_mixes_towards_the_mean(images):
    mean = images.mean(dim=(2, 3), keepdim=True)
    for severity, factor in enumerate(_PARAMS["contrast"], start=1):
        expected = mean + factor * (images - mean)
        assert_close(corrupt(images, "contrast", severity), expected)


def hsv_reference(images: torch.Tensor, edit) -> torch.Tensor:
    """Apply ``edit(h, s, v) -> (h, s, v)`` pixel by pixel with colorsys."""
    out = torch.empty_like(images)
    for n, i, j in torch.cartesian_prod(*(torch.arange(k) for k in images[:, 0].shape)).tolist():
        hsv = edit(*colorsys.rgb_to_hsv(*images[n, :, i, j].tolist()))
        out[n, :, i, j] = torch.tensor(colorsys.hsv_to_rgb(*hsv))
    return out


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_brightness_and_saturate_match_colorsys(images, severity):
    x = images[:2, :, :6, :6].clone()
    x[0, :, 0, :3] = torch.tensor([[0.0, 0.4, 1.0]])  # black and grey pixels, and white
    shift = _PARAMS["brightness"][severity - 1]
    scale, offset = _PARAMS["saturate"][severity - 1]
    brighter = hsv_reference(x, lambda h, s, v: (h, s, min(v + shift, 1)))
    saturated = hsv_reference(x, lambda h, s, v: (h, min(max(s * scale + offset, 0), 1), v))
    assert_close(corrupt(x, "brightness", severity), brighter)
    assert_close(corrupt(x, "saturate", severity), saturated)
    grey = x[:, :1]
    expected = (grey + shift).clamp(max=1)
    assert_close(corrupt(grey, "brightness", severity), expected)


@pytest.mark.parametrize("size", [(32, 32), (27, 20)])
def test_pixelate_is_the_block_mean_on_each_block(size):
    x = natural_images(2, 3, 32)[..., : size[0], : size[1]]
    for severity, keep in enumerate(_PARAMS["pixelate"], start=1):
        cells = int(size[0] * keep), int(size[1] * keep)
        rows = torch.arange(size[0]) * cells[0] // size[0]  # nearest-upsampling source cell
        cols = torch.arange(size[1]) * cells[1] // size[1]
        block = (rows[:, None] * cells[1] + cols[None, :]).flatten()
        sums = torch.zeros(2, 3, cells[0] * cells[1]).index_add_(2, block, x.flatten(2))
        means = sums / torch.bincount(block)
        expected = means[..., block].view_as(x)
        assert_close(corrupt(x, "pixelate", severity), expected)


@pytest.mark.parametrize("name", BLURS)
def test_blurs_keep_constant_images(name):
    constant = torch.full((3, 3, 20, 27), 0.3)
    for severity in range(1, SEVERITIES + 1):
        out = corrupt(constant, name, severity, seeded())
        assert_close(out, constant, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_keeps_constant_images_up_to_quantisation(channels):
    constant = torch.full((2, channels, 20, 27), 0.3)
    constant[1] = 0.8
    for severity in range(1, SEVERITIES + 1):
        out = corrupt(constant, "jpeg_compression", severity)
        assert (out - constant).abs().max() <= 2 / 255


def test_blur_kernels_sum_to_one():
    for params in _PARAMS["defocus_blur"]:
        kernel = _defocus_kernel(*params)
        assert kernel.min() >= 0 and kernel.sum().item() == pytest.approx(1)
        assert_close(kernel, kernel.flip(0).flip(1))  # a disk is symmetric
    angles = torch.tensor([0.0, 0.3, -0.7, math.pi / 4])
    for params in _PARAMS["motion_blur"]:
        kernels = _motion_kernels(angles, *params)
        assert kernels.min() >= 0
        assert_close(kernels.sum(dim=(1, 2)), torch.ones(4, dtype=kernels.dtype))
        centre = kernels.shape[-1] // 2
        assert kernels[0, centre].sum().item() == pytest.approx(1)  # angle 0: horizontal
        streak = kernels[0, centre, centre:]  # one-sided Gaussian weights from the pixel on
        t = torch.arange(len(streak), dtype=streak.dtype)
        assert_close(streak / streak[0], torch.exp(-(t**2) / (2 * params[1] ** 2)))
        assert len(streak) - 1 == min(2 * params[0], math.ceil(3 * params[1]))
    box = _defocus_kernel(1.5, 0.1)  # radius 1.5 holds the 3x3 square; sigma 0.1 barely blurs
    assert box.shape == (5, 5)
    assert_close(box[1:4, 1:4], torch.full((3, 3), 1 / 9, dtype=box.dtype))
    plus = _defocus_kernel(1.0, 0.2)
    assert plus[2, 2] == pytest.approx(0.2, abs=1e-5) and plus[1, 1] < 1e-5


def test_motion_blur_angle_differs_per_image(images):
    same = images[:1].expand(4, -1, -1, -1)
    out = corrupt(same, "motion_blur", 5, seeded())
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])


def test_fog_adds_one_normalised_grey_cloud(images):
    strength = _PARAMS["fog"][4][0]
    out = corrupt(images, "fog", 5, seeded())
    peak = images.amax(dim=(1, 2, 3), keepdim=True)
    cloud = (out * (peak + strength) / peak - images) / strength
    assert_close(cloud, cloud[:, :1].expand_as(cloud))
    assert cloud.amin(dim=(1, 2, 3)).abs().max() < 1e-5
    assert (cloud.amax(dim=(1, 2, 3)) - 1).abs().max() < 1e-5
    # Low frequency: neighbouring pixels differ far less than the cloud's spread.
    assert (cloud[..., 1:] - cloud[..., :-1]).abs().mean() < 0.2 * cloud.std()


def test_jpeg_psnr_falls_with_quality(images):
    high = psnr(jpeg_round_trip(images, 95, chroma_subsampling=False), images).mean()
    grey = psnr(jpeg_round_trip(images[:, :1], 95), images[:, :1]).mean()
    low = psnr(jpeg_round_trip(images, 40, chroma_subsampling=False), images).mean()
    assert high > 30 and grey > 30 and high > low + 5


def pil_jpeg(images: torch.Tensor, quality: int, subsampling: int) -> torch.Tensor:
    from PIL import Image

    out = []
    for image in images:
        pixels = (image * 255).round().byte().permute(1, 2, 0).squeeze(2).numpy()
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=quality, subsampling=subsampling)
        decoded = torch.tensor(list(Image.open(buffer).getdata()), dtype=torch.float32) / 255
        out.append(decoded.reshape(*image.shape[1:], -1).permute(2, 0, 1))
    return torch.stack(out)


@pytest.mark.parametrize(("channels", "subsample"), [(3, True), (3, False), (1, False)])
@pytest.mark.parametrize("quality", [80, 40])
def test_jpeg_matches_pil(images, channels, subsample, quality):
    pytest.importorskip("PIL")
    x = (images[:4, :channels, :, :27] * 255).round() / 255
    ours = jpeg_round_trip(x, quality, chroma_subsampling=subsample)
    theirs = pil_jpeg(x, quality, subsampling=2 if subsample else 0)
    # libjpeg's integer DCT rounds a few coefficients the other way: agree closely on average.
    assert psnr(ours, theirs).mean() > 38
    assert psnr(ours, x).mean().item() == pytest.approx(psnr(theirs, x).mean().item(), abs=0.3)


def test_psnr_known_answers():
    a = torch.full((2, 3, 4, 4), 0.5)
    b = a.clone()
    b[0] += 0.1
    scores = psnr(a, b)
    assert scores[0].item() == pytest.approx(20.0)
    assert math.isinf(scores[1].item())
    with pytest.raises(ValueError, match="same shape"):
        psnr(a, b[:1])
    with pytest.raises(ValueError, match="quality must be in 1..100"):
        jpeg_round_trip(a, 0)
    with pytest.raises(ValueError, match="1 or 3"):
        jpeg_round_trip(a[:, :2], 50)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((torch.rand(2, 3, 8, 8), "blur", 1), "unknown corruption 'blur'; choose one of gaussian"),
        ((torch.rand(2, 3, 8, 8), "fog", 6), "severity must be an integer in 0..5, got 6"),
        ((torch.rand(2, 3, 8, 8), "fog", -1), "severity must be an integer in 0..5, got -1"),
        ((torch.rand(2, 3, 8, 8), "fog", 2.0), "severity must be an integer in 0..5"),
        ((torch.rand(2, 3, 8, 8), "fog", True), "severity must be an integer in 0..5"),
        ((torch.rand(3, 8, 8), "fog", 1), r"floating \(N, C, H, W\) tensor, got .*\(3, 8, 8\)"),
        ((torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "fog", 1), "torch.uint8"),
        (([[0.5]], "fog", 1), "floating .* tensor, got list"),
        ((torch.rand(2, 1, 8, 8), "saturate", 1), "corruption 'saturate' needs 3-channel"),
        ((torch.rand(2, 4, 8, 8), "fog", 1), "1- or 3-channel images, got 4"),
    ],
)
def test_errors(args, message):
    with pytest.raises(ValueError, match=message) as info:
        corrupt(*args)
    assert "\n" not in str(info.value)
