"""CIFAR-10-C-style image corruptions (Hendrycks & Dietterich, ICLR 2019), made on the fly.

Robustness evaluation needs the corrupted test set, but the released CIFAR-10-C arrays are
large, fixed to 32x32 CIFAR images and made image by image with numpy, OpenCV, Wand and PIL.
Here every corruption is a batched tensor operation on float ``(N, C, H, W)`` images in [0, 1]
on any device, so any dataset can be corrupted where its features are extracted. Severities
1..5 use CIFAR-10-C's parameters (adapted where an operation differs, as noted in ``_PARAMS``);
random corruptions draw from a ``torch.Generator`` so a corrupted test set is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

SEVERITIES = 5

# Per-severity parameters (severity 1..5). They are CIFAR-10-C's values for 32x32 images
# (make_cifar_c.py), adapted where noted.
_PARAMS: dict[str, tuple] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # std of additive noise
    "shot_noise": (500, 250, 100, 75, 50),  # photons at intensity 1: poisson(x * c) / c
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),  # fraction of values set to 0 or 1
    "speckle_noise": (0.06, 0.10, 0.12, 0.16, 0.20),  # std of multiplicative noise
    # (disk radius, std of the anti-aliasing Gaussian applied to the disk kernel).
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)),
    # (radius, std) of a one-sided Gaussian streak at a random angle in [-45, 45] degrees per
    # image, like ImageMagick's motion blur: taps 0..2 * radius, those beyond 3 std dropped.
    # CIFAR-10-C's severity 4, (8, 2), is severity 3's kernel up to negligible tails (the
    # radius only bounds the taps); here it gets std 2.25 so that damage grows.
    "motion_blur": ((6, 1.0), (6, 1.5), (6, 2.0), (8, 2.25), (9, 2.5)),
    "zoom_blur": (1.05, 1.10, 1.15, 1.20, 1.25),  # average of zooms 1, 1.01, ..., c
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),  # std
    # (strength, decay): add strength * plasma-like cloud noise whose octave k has amplitude
    # decay**-k, then rescale by max / (max + strength).
    "fog": ((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75)),
    "brightness": (0.05, 0.10, 0.15, 0.20, 0.30),  # added to HSV value
    "contrast": (0.75, 0.50, 0.40, 0.30, 0.15),  # mean + c * (x - mean), per image and channel
    # HSV saturation s -> clip(a * s + b). CIFAR-10-C uses (0.3, 0), (0.1, 0), (1.5, 0),
    # (2, 0.1), (2.5, 0.2), which desaturates at severities 1-2 and so is not monotone in
    # damage; here saturation only grows, keeping its top values.
    "saturate": ((1.5, 0.0), (2.0, 0.0), (2.0, 0.1), (2.5, 0.2), (3.0, 0.3)),
    # Fraction of the side length kept: block-average down, nearest up (CIFAR-10-C resizes back
    # with a box filter instead, which blurs the block edges).
    "pixelate": (0.95, 0.90, 0.85, 0.75, 0.65),
    "jpeg_compression": (80, 65, 58, 50, 40),  # IJG quality, 4:2:0 chroma as PIL's default
}

CORRUPTIONS: tuple[str, ...] = tuple(_PARAMS)
_COLOUR_ONLY = frozenset({"saturate"})

# Standard JPEG quantisation tables (ITU-T T.81, Annex K) at quality 50.
_LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
) + ((99,) * 8,) * 4
# JFIF RGB -> YCbCr (offsets of 128 on Cb, Cr omitted: they cancel with the DCT level shift).
_RGB_TO_YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168736, -0.331264, 0.5),
    (0.5, -0.418688, -0.081312),
)


def corruptions_for(channels: int) -> tuple[str, ...]:
    """The corruptions defined for 1- (grayscale) or 3-channel (RGB) images."""
    if channels == 3:
        return CORRUPTIONS
    if channels == 1:
        return tuple(name for name in CORRUPTIONS if name not in _COLOUR_ONLY)
    raise ValueError(f"corruptions need 1- or 3-channel images, got {channels} channels")


def corrupt(
    images: Tensor, name: str, severity: int, generator: torch.Generator | None = None
) -> Tensor:
    """``images`` (N, C, H, W) in [0, 1] with corruption ``name`` at ``severity`` (0 = none).

    Returns a new tensor of the same shape, dtype and device, clamped to [0, 1]. Random
    corruptions draw from ``generator`` (on the CPU or on the images' device; CPU draws are
    moved to the images), so the same seed gives the same corrupted images on any device.
    """
    if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
        what = type(images).__name__
        if isinstance(images, Tensor):
            what = f"{images.dtype} tensor of shape {tuple(images.shape)}"
        raise ValueError(f"images must be a floating (N, C, H, W) tensor, got {what}")
    if name not in _PARAMS:
        raise ValueError(f"unknown corruption {name!r}; choose one of {', '.join(CORRUPTIONS)}")
    if (
        isinstance(severity, bool)
        or not isinstance(severity, int)
        or not 0 <= severity <= SEVERITIES
    ):
        raise ValueError(f"severity must be an integer in 0..{SEVERITIES}, got {severity!r}")
    if name not in corruptions_for(images.shape[1]):
        raise ValueError(f"corruption {name!r} needs 3-channel (RGB) images, got 1 channel")
    if severity == 0:
        return images.clone()
    work = images.to(torch.promote_types(images.dtype, torch.float32))
    out = _FUNCTIONS[name](work, _PARAMS[name][severity - 1], generator)
    return out.clamp_(0, 1).to(images.dtype)


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """Per-image peak signal-to-noise ratio in dB (float64, inf if equal) of (N, ...) images
    in [0, 1]: the standard measure of how far a corruption moves an image."""
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"psnr needs two batches of the same shape, got {a.shape} and {b.shape}")
    mse = (a.double() - b.double()).square().flatten(1).mean(1)
    return -10 * torch.log10(mse)


def jpeg_round_trip(images: Tensor, quality: int, chroma_subsampling: bool = True) -> Tensor:
    """Encode and decode float (N, 1 or 3, H, W) images in [0, 1] as baseline JPEG.

    RGB goes to YCbCr (chroma 2x2-averaged with ``chroma_subsampling``, as PIL does by
    default), each plane is level-shifted, padded by edge replication to whole 8x8 blocks,
    DCT-transformed, quantised with the IJG tables scaled to ``quality`` (1..100) and decoded
    back (chroma upsampled bilinearly, like libjpeg's fancy upsampling) to 8-bit levels.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"JPEG needs (N, 1 or 3, H, W) images, got shape {tuple(images.shape)}")
    x = images * 255
    if x.shape[1] == 1:
        luma = _jpeg_plane(x - 128, _quant_table(_LUMA_TABLE, quality, x)) + 128
        return luma.round_().clamp_(0, 255) / 255
    height, width = x.shape[-2:]
    matrix = torch.tensor(_RGB_TO_YCBCR, dtype=torch.float64)
    ycc = torch.einsum("kc,nchw->nkhw", matrix.to(x.dtype).to(x.device), x)
    luma = _jpeg_plane(ycc[:, :1] - 128, _quant_table(_LUMA_TABLE, quality, x))
    chroma = ycc[:, 1:]
    if chroma_subsampling:
        chroma = F.avg_pool2d(_pad_to(chroma, 2), 2)
    chroma = _jpeg_plane(chroma, _quant_table(_CHROMA_TABLE, quality, x))
    if chroma_subsampling:
        chroma = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False)
    ycc = torch.cat([luma + 128, chroma[..., :height, :width]], dim=1)
    inverse = torch.linalg.inv(matrix).to(x.dtype).to(x.device)
    rgb = torch.einsum("kc,nchw->nkhw", inverse, ycc)
    return rgb.round_().clamp_(0, 255) / 255


def _quant_table(base: tuple, quality: int, like: Tensor) -> Tensor:
    """IJG quality scaling of a quality-50 table (libjpeg's jpeg_quality_scaling)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    table = [[min(max((q * scale + 50) // 100, 1), 255) for q in row] for row in base]
    return torch.tensor(table, dtype=like.dtype, device=like.device)


def _dct_matrix(like: Tensor) -> Tensor:
    """Orthonormal 8-point DCT-II matrix (JPEG's 2-D DCT is D @ block @ D.T)."""
    k = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * 0.5
    d[0] = math.sqrt(1 / 8)
    return d.to(like.dtype).to(like.device)


def _pad_to(x: Tensor, multiple: int) -> Tensor:
    """Pad H and W up to a multiple of ``multiple`` by replicating the last row and column."""
    pad_h, pad_w = (-x.shape[-2]) % multiple, (-x.shape[-1]) % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


def _jpeg_plane(x: Tensor, table: Tensor) -> Tensor:
    """Quantise the 8x8 block DCT of level-shifted planes (N, C, H, W) and transform back."""
    n, c, height, width = x.shape
    padded = _pad_to(x, 8)
    bh, bw = padded.shape[-2] // 8, padded.shape[-1] // 8
    blocks = padded.reshape(n, c, bh, 8, bw, 8).transpose(3, 4)
    d = _dct_matrix(x)
    coefficients = d @ blocks @ d.T
    coefficients = torch.round(coefficients / table) * table
    blocks = d.T @ coefficients @ d
    return blocks.transpose(3, 4).reshape(padded.shape)[..., :height, :width]


def _random(sample: Callable, shape: tuple[int, ...], like: Tensor, generator) -> Tensor:
    """``sample`` (torch.rand or torch.randn) drawn where ``generator`` lives, on ``like``'s device."""
    device = like.device if generator is None else generator.device
    return sample(shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


def _convolve(x: Tensor, kernel: Tensor) -> Tensor:
    """Correlate every channel with a (k, k) kernel or one (N, k, k) kernel per image.

    Borders are replicated, so constant images stay constant.
    """
    n, c, height, width = x.shape
    k = kernel.shape[-1]
    padded = F.pad(x, (k // 2,) * 4, mode="replicate")
    kernel = kernel.to(x.dtype).to(x.device)
    if kernel.ndim == 2:
        return F.conv2d(padded, kernel.expand(c, 1, k, k), groups=c)
    weight = kernel.repeat_interleave(c, dim=0).unsqueeze(1)  # (N * C, 1, k, k)
    out = F.conv2d(padded.reshape(1, n * c, *padded.shape[-2:]), weight, groups=n * c)
    return out.view(n, c, height, width)


def _gaussian_kernel(sigma: float, radius: int) -> Tensor:
    """Normalised (2r+1, 2r+1) Gaussian kernel."""
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return torch.outer(g, g) / g.sum() ** 2


def _defocus_kernel(radius: float, alias_sigma: float) -> Tensor:
    """A disk of ``radius`` smoothed by a 3x3 Gaussian of ``alias_sigma`` (CIFAR-10-C's kernel)."""
    r = math.floor(radius)  # lattice points farther out are outside the disk
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    disk = (t[:, None] ** 2 + t[None, :] ** 2 <= radius**2).double()
    smooth = _gaussian_kernel(alias_sigma, 1)
    kernel = F.conv2d(F.pad(disk, (2, 2, 2, 2))[None, None], smooth[None, None])[0, 0]
    return kernel / kernel.sum()


def _motion_kernels(angles: Tensor, radius: int, sigma: float) -> Tensor:
    """One (k, k) one-sided Gaussian streak per angle (radians): taps at 0, 1, ... pixels along
    the angle, weighted exp(-t^2 / 2 sigma^2) and splatted bilinearly onto the grid."""
    taps = min(2 * radius, math.ceil(3 * sigma))
    t = torch.arange(taps + 1, dtype=angles.dtype, device=angles.device)
    weight = torch.exp(-(t**2) / (2 * sigma**2))
    grid = torch.arange(-taps, taps + 1, dtype=angles.dtype, device=angles.device)
    px = t * torch.cos(angles)[:, None]  # (N, T)
    py = -t * torch.sin(angles)[:, None]
    wx = (1 - (grid - px[..., None]).abs()).clamp_min(0)  # (N, T, k)
    wy = (1 - (grid - py[..., None]).abs()).clamp_min(0)
    kernels = torch.einsum("t,nti,ntj->nij", weight, wy, wx)
    return kernels / kernels.sum(dim=(1, 2), keepdim=True)


def _block_average(size: int, blocks: int, like: Tensor) -> Tensor:
    """(size, size) matrix averaging each run of pixels that nearest upsampling from ``blocks``
    cells to ``size`` pixels maps to one cell: pixel i belongs to cell floor(i * blocks / size)."""
    cell = torch.arange(size, device=like.device) * blocks // size
    same = (cell[:, None] == cell[None, :]).to(like.dtype)
    return same / same.sum(dim=1, keepdim=True)


def _gaussian_noise(x: Tensor, std: float, generator) -> Tensor:
    return x + std * _random(torch.randn, x.shape, x, generator)


def _shot_noise(x: Tensor, photons: float, generator) -> Tensor:
    device = x.device if generator is None else generator.device
    counts = torch.poisson((x * photons).to(device), generator=generator)
    return counts.to(x.device) / photons


def _impulse_noise(x: Tensor, amount: float, generator) -> Tensor:
    flip = _random(torch.rand, x.shape, x, generator) < amount
    salt = _random(torch.rand, x.shape, x, generator) < 0.5
    return torch.where(flip, salt.to(x.dtype), x)


def _speckle_noise(x: Tensor, std: float, generator) -> Tensor:
    return x + x * std * _random(torch.randn, x.shape, x, generator)


def _defocus_blur(x: Tensor, params: tuple[float, float], generator) -> Tensor:
    return _convolve(x, _defocus_kernel(*params))


def _motion_blur(x: Tensor, params: tuple[int, float], generator) -> Tensor:
    angles = (_random(torch.rand, (x.shape[0],), x, generator) - 0.5) * (math.pi / 2)
    return _convolve(x, _motion_kernels(angles, *params))


def _zoom_blur(x: Tensor, max_zoom: float, generator) -> Tensor:
    """Mean of the image (counted twice, as in CIFAR-10-C) and its centre zooms 1.01..max."""
    zooms = torch.arange(1.01, max_zoom + 0.005, 0.01).tolist()
    total = 2 * x
    for zoom in zooms:
        theta = torch.tensor([[1 / zoom, 0, 0], [0, 1 / zoom, 0]], dtype=x.dtype, device=x.device)
        grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
        total += F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    return total / (len(zooms) + 2)


def _gaussian_blur(x: Tensor, sigma: float, generator) -> Tensor:
    return _convolve(x, _gaussian_kernel(sigma, math.ceil(4 * sigma)))


def _fog(x: Tensor, params: tuple[float, float], generator) -> Tensor:
    """Grey cloud noise: octaves of random grids of 2, 3, 5, ..., 2^K + 1 points upsampled
    bilinearly, octave k weighted decay**-k, min-max normalised per image (a batched stand-in
    for CIFAR-10-C's diamond-square plasma fractal)."""
    strength, decay = params
    n, _, height, width = x.shape
    fog = x.new_zeros(n, 1, height, width)
    for octave in range(math.ceil(math.log2(max(height, width, 2))) + 1):
        points = 2**octave + 1
        noise = _random(torch.randn, (n, 1, points, points), x, generator)
        up = F.interpolate(noise, size=(height, width), mode="bilinear", align_corners=True)
        fog += up * decay**-octave
    low = fog.amin(dim=(2, 3), keepdim=True)
    fog = (fog - low) / (fog.amax(dim=(2, 3), keepdim=True) - low).clamp_min(1e-12)
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x + strength * fog) * peak / (peak + strength)


def _brightness(x: Tensor, shift: float, generator) -> Tensor:
    """HSV value v -> min(v + shift, 1) at fixed hue and saturation: RGB scales by v' / v."""
    value = x.amax(dim=1, keepdim=True)
    new = (value + shift).clamp_(max=1)
    return torch.where(value > 0, x * new / value.clamp_min(1e-12), new.expand_as(x))


def _contrast(x: Tensor, factor: float, generator) -> Tensor:
    mean = x.mean(dim=(2, 3), keepdim=True)
    return mean + factor * (x - mean)


def _saturate(x: Tensor, params: tuple[float, float], generator) -> Tensor:
    """HSV saturation s -> clip(a s + b, 0, 1) at fixed hue and value.

    At fixed value v and hue, each channel is v - s * v * g(hue), so the new image is
    v - (s' / s) (v - x); grey pixels (s = 0) take hue 0 (red), as colorsys and skimage do.
    """
    scale, offset = params
    value = x.amax(dim=1, keepdim=True)
    chroma = value - x.amin(dim=1, keepdim=True)
    sat = chroma / value.clamp_min(1e-12)
    new = (sat * scale + offset).clamp_(0, 1)
    coloured = value - new / sat.clamp_min(1e-12) * (value - x)
    red = torch.tensor([0.0, 1.0, 1.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    grey = value - value * new * red
    return torch.where(chroma > 0, coloured, grey)


def _pixelate(x: Tensor, keep: float, generator) -> Tensor:
    height, width = x.shape[-2:]
    rows = _block_average(height, max(int(height * keep), 1), x)
    cols = _block_average(width, max(int(width * keep), 1), x)
    return rows @ x @ cols.T


def _jpeg(x: Tensor, quality: int, generator) -> Tensor:
    return jpeg_round_trip(x, quality)


_FUNCTIONS: dict[str, Callable[[Tensor, object, torch.Generator | None], Tensor]] = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "speckle_noise": _speckle_noise,
    "defocus_blur": _defocus_blur,
    "motion_blur": _motion_blur,
    "zoom_blur": _zoom_blur,
    "gaussian_blur": _gaussian_blur,
    "fog": _fog,
    "brightness": _brightness,
    "contrast": _contrast,
    "saturate": _saturate,
    "pixelate": _pixelate,
    "jpeg_compression": _jpeg,
}
