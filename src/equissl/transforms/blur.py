"""Gaussian blur levels as one separable, per-sample convolution.

Kernel sizes are given at 32x32 and scaled with the image: k = the odd integer nearest to
k32 * size / 32 (ties upward), at least 3, bumped by 2 where a level would not be larger than
the previous one. Two sigma rules:

- `blur` (Wang et al.'s four-fold blur): sigma drawn per image from U(0.1, 2.0) (torchvision's
  `GaussianBlur` default, scaled by size / 32) whatever the level, so the levels differ by the
  kernel's support. Training draws it from the caller's generator (`Transformation.apply_drawn`);
  `apply` without a generator (held-out accuracy, probes) uses the midpoint, 1.05 at 32x32.
- `blur_fixed`, `blur8`: sigma = 0.3 ((k - 1) / 2 - 1) + 0.8 (OpenCV's rule for a given size:
  1.1 / 1.7 / 2.6 for kernels 5 / 9 / 15), so every level is one fixed filter.

Every sample's 1-D kernel is zero-padded to the largest size (level 0 is a delta) and the batch
is filtered by `equissl.augment.blur.separable_filter` (reflect padding of any width, a grouped
conv2d per axis). Not a group: relative is None.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from equissl.augment.blur import separable_filter
from equissl.transforms.base import DeviceCache, Transformation, check_square

KERNELS_AT_32: dict[str, tuple[int, ...]] = {
    "blur": (5, 9, 15),
    "blur_fixed": (5, 9, 15),
    "blur8": (3, 5, 7, 9, 11, 13, 15),
}
RANDOM_SIGMA_AT_32 = (0.1, 2.0)  # torchvision GaussianBlur's default sigma range


def kernel_sizes(sizes_at_32: tuple[int, ...], size: int) -> tuple[int, ...]:
    """The odd kernel sizes of the blur levels 1.. at image side `size` (strictly increasing)."""
    out: list[int] = []
    for k32 in sizes_at_32:
        k = max(2 * math.floor((k32 * size / 32 - 1) / 2 + 0.5) + 1, 3)
        if out and k <= out[-1]:
            k = out[-1] + 2
        out.append(k)
    return tuple(out)


def sigma_for(k: int) -> float:
    """OpenCV's default Gaussian sigma for kernel size k."""
    return 0.3 * ((k - 1) / 2 - 1) + 0.8


def kernel_table(sizes: tuple[int, ...]) -> Tensor:
    """(1 + len(sizes), kmax) float64 1-D kernels, centred: row 0 a delta, row i the
    normalised Gaussian of size sizes[i - 1]."""
    kmax = max(sizes)
    table = torch.zeros(len(sizes) + 1, kmax, dtype=torch.float64)
    table[0, kmax // 2] = 1.0
    for i, k in enumerate(sizes, start=1):
        x = torch.arange(k, dtype=torch.float64) - (k - 1) / 2
        g = torch.exp(-(x**2) / (2 * sigma_for(k) ** 2))
        start = (kmax - k) // 2
        table[i, start : start + k] = g / g.sum()
    return table


def random_sigma_kernels(half: Tensor, kmax: int, labels: Tensor, sigmas: Tensor) -> Tensor:
    """(N, kmax) 1-D kernels: image i's Gaussian of std `sigmas[i]` on the support of its level
    (`half[label]` pixels either side; torchvision's `_get_gaussian_kernel1d`), normalised;
    level 0 (half-width 0) a delta."""
    x = torch.arange(kmax, device=labels.device, dtype=sigmas.dtype) - kmax // 2
    inside = x.abs() <= half[labels].unsqueeze(1)
    g = torch.exp(-0.5 * (x / sigmas.unsqueeze(1)) ** 2) * inside
    return g / g.sum(1, keepdim=True)


def blur(name: str, size: int) -> Transformation:
    """`name` in KERNELS_AT_32: label 0 no blur, label i the i-th Gaussian level (`blur`: a
    sigma drawn per image; `blur_fixed` and `blur8`: fixed sigmas)."""
    sizes = kernel_sizes(KERNELS_AT_32[name], size)
    kernels = DeviceCache(kernel_table(sizes))
    kmax = max(sizes)

    def convolve(images: Tensor, labels: Tensor, k: Tensor) -> Tensor:
        check_square(images, size, name)
        x = separable_filter(images, k)
        # the delta row is already exact with IEEE products; the guard keeps level 0 exact
        # under any convolution algorithm the backend picks (TF32, FFT, Winograd)
        return torch.where((labels == 0).view(-1, 1, 1, 1), images, x)

    if name != "blur":

        def apply(images: Tensor, labels: Tensor) -> Tensor:
            return convolve(images, labels, kernels.on(images.device, images.dtype)[labels])

        return Transformation(name, len(sizes) + 1, apply, None)

    lo, hi = (s * size / 32 for s in RANDOM_SIGMA_AT_32)
    half = DeviceCache(torch.tensor((0, *sizes)) // 2)

    def with_sigmas(images: Tensor, labels: Tensor, sigmas: Tensor) -> Tensor:
        k = random_sigma_kernels(half.on(labels.device), kmax, labels, sigmas)
        return convolve(images, labels, k)

    def apply_mid(images: Tensor, labels: Tensor) -> Tensor:
        sigmas = images.new_full((images.shape[0],), (lo + hi) / 2)
        return with_sigmas(images, labels, sigmas)

    def apply_drawn(images: Tensor, labels: Tensor, generator: torch.Generator) -> Tensor:
        u = torch.rand(images.shape[0], generator=generator, device=generator.device)
        return with_sigmas(images, labels, (lo + (hi - lo) * u).to(images.device, images.dtype))

    return Transformation(name, len(sizes) + 1, apply_mid, None, drawn=apply_drawn)
