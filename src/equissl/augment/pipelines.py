"""Named augmentation pipelines that turn a uint8 batch into float views on its own device.

Every random choice is drawn as a batch tensor from the caller's ``torch.Generator``, in a fixed
order that does not depend on the data, so the same generator state gives the same views. The
order is crop, flip, (simclr) jitter, jitter order, grayscale, then blur and its sigma and
solarisation, the last two only when their probability is above 0 (so a pipeline without them
draws exactly what it drew before they existed). Rendering follows torchvision's order: crop,
flip, jitter, grayscale, blur, solarise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from equissl.augment.blur import blur_kernel_size, gaussian_blur
from equissl.augment.color import (
    HUE,
    IDENTITY_FACTORS,
    SATURATION,
    _cached,
    color_jitter_,
    grayscale,
    sample_jitter_factors,
    solarize_,
)
from equissl.augment.crop import (
    INTERPOLATIONS,
    apply_matrices,
    crop_matrices,
    full_boxes,
    sample_crop_boxes,
)
from equissl.augment.stats import UINT8_SCALE, resize_float, to_float
from equissl.chunks import chunk_count, chunk_ids
from equissl.errors import ConfigError
from equissl.seeds import hashed_seed

PIPELINES = ("simclr", "cropflip", "none")


# On CPU a batch is rendered in blocks of about this many float32 values per view tensor, so
# the crop output and the colour temporaries stay in L2 cache (2-3x faster than whole-batch ops).
CPU_BLOCK_ELEMENTS = 1 << 18


@dataclass(frozen=True)
class Draw:
    """Every random choice for one batch (drawn up front, so rendering is deterministic)."""

    boxes: Tensor  # (N, 4) top, left, h, w
    flipped: Tensor  # (N,) bool
    jittered: Tensor  # (N,) bool
    factors: Tensor  # (N, 4) brightness, contrast, saturation, hue; identity where not jittered
    ops: tuple[int, ...]  # jitter ops to run, in the order drawn for this batch
    gray: Tensor  # (N,) bool
    blurred: Tensor  # (N,) bool
    sigma: Tensor  # (N,) blur sigma; 0 where not blurred
    solarized: Tensor  # (N,) bool

    def take(self, index: Tensor) -> Draw:
        """The draw of image ``index[i]`` for each i: rows shared by several images."""
        pick = functools.partial(torch.index_select, dim=0, index=index)
        return Draw(
            pick(self.boxes),
            pick(self.flipped),
            pick(self.jittered),
            pick(self.factors),
            self.ops,
            pick(self.gray),
            pick(self.blurred),
            pick(self.sigma),
            pick(self.solarized),
        )

    def params(self) -> dict[str, Tensor]:
        return {
            "boxes": self.boxes,
            "flipped": self.flipped,
            "jitter": self.factors,
            "gray": self.gray,
            "blur_sigma": self.sigma,
            "solarized": self.solarized,
        }


@dataclass(frozen=True)
class Augment:
    """A named pipeline; call it as ``augment(images, generator, return_params=False, chunks=0)``.

    ``images``: uint8 ``(N, C, H, W)`` with C in {1, 3}; ``generator`` lives on their device.
    With ``chunks`` > 0 the batch is split into that many consecutive blocks
    (``equissl.chunks``) and every image of a block gets the same random draw (CARE).
    Returns float32 ``(N, C, size, size)`` views in [0, 1], plus, with ``return_params``, a dict
    of per-image tensors: ``boxes`` (N, 4) as (top, left, h, w) pixels, ``flipped`` (N,) bool,
    ``jitter`` (N, 4) brightness/contrast/saturation factors and hue shift ((1, 1, 1, 0) where
    not applied), ``gray`` (N,) bool, ``blur_sigma`` (N,) (0 where not blurred), ``solarized``
    (N,) bool.
    """

    name: str
    size: int
    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    gray_p: float = 0.2
    interpolation: str = "bilinear"  # of the crop: bilinear | bicubic (PIL's, antialiased)
    blur_p: float = 0.0
    blur_kernel: int | None = None  # odd; None: 10% of the view size, made odd (SimCLR)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0

    def __post_init__(self) -> None:
        _check(self)

    def __call__(
        self,
        images: Tensor,
        generator: torch.Generator,
        return_params: bool = False,
        chunks: int = 0,
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(
                f"expected uint8 (N, C, H, W) images with 1 or 3 channels, "
                f"got {images.dtype} {tuple(images.shape)}"
            )
        if self.name == "none":
            views = _resize(to_float(images), self.size)
            return (views, _no_draw(images).params()) if return_params else views
        if chunks > 0:
            n = images.shape[0]
            draw = self.draw(images[: chunk_count(n, chunks)], generator)
            draw = draw.take(chunk_ids(n, chunks, images.device))
        else:
            draw = self.draw(images, generator)
        height, width = images.shape[-2:]
        wy, wx = crop_matrices(
            draw.boxes, height, width, self.size, draw.flipped, UINT8_SCALE, self.interpolation
        )
        blur = functools.partial(_blur_, kernel=blur_kernel_size(self.blur_kernel, self.size))
        views = torch.empty(*images.shape[:2], self.size, self.size, device=images.device)
        jitter = functools.partial(color_jitter_, order=draw.ops)
        for rows in _blocks(images, self.size):
            block = apply_matrices(images[rows], wy[rows], wx[rows], out=views[rows]).clamp_(0, 1)
            if draw.ops:
                _on_subset_(block, draw.jittered[rows], jitter, draw.factors[rows])
            _on_subset_(block, draw.gray[rows], _grayscale_)
            if self.blur_p > 0:
                _on_subset_(block, draw.blurred[rows], blur, draw.sigma[rows])
            if self.solarize_p > 0:
                _on_subset_(block, draw.solarized[rows], solarize_)
        return (views, draw.params()) if return_params else views

    def draw(self, images: Tensor, generator: torch.Generator) -> Draw:
        """Draw this batch's random parameters, in a fixed order independent of the pixels."""
        n, channels, height, width = images.shape
        device = images.device
        boxes = sample_crop_boxes(n, height, width, self.scale, self.ratio, generator, device)
        flipped = torch.rand(n, generator=generator, device=device) < self.flip_p
        no_draw = _no_draw(images)
        if self.name != "simclr":
            return self._draw_filters(replace(no_draw, boxes=boxes, flipped=flipped), generator)
        jittered = torch.rand(n, generator=generator, device=device) < self.jitter_p
        factors = sample_jitter_factors(n, self.jitter, generator, device)
        order = host_permutation(4, generator)
        gray = torch.rand(n, generator=generator, device=device) < self.gray_p
        if channels == 1:  # brightness and contrast only; grayscale is a no-op
            jittered_ops = [op for op in order if op < SATURATION]
            gray = no_draw.gray
        else:
            jittered_ops = order
        ops = tuple(op for op in jittered_ops if self.jitter[op] > 0)
        used = _cached(tuple(op in ops for op in range(4)), (4,), torch.bool, device)
        factors = torch.where(jittered[:, None] & used, factors, no_draw.factors)
        draw = replace(
            no_draw, boxes=boxes, flipped=flipped, jittered=jittered, factors=factors, ops=ops
        )
        return self._draw_filters(replace(draw, gray=gray), generator)

    def _draw_filters(self, draw: Draw, generator: torch.Generator) -> Draw:
        """Add blur (with its sigma) and solarisation draws, each only if its probability > 0."""
        n, device = draw.flipped.shape[0], draw.flipped.device
        if self.blur_p > 0:
            u = torch.rand(n, 2, generator=generator, device=device)
            lo, hi = self.blur_sigma
            blurred = u[:, 0] < self.blur_p
            sigma = torch.where(blurred, lo + (hi - lo) * u[:, 1], draw.sigma)
            draw = replace(draw, blurred=blurred, sigma=sigma)
        if self.solarize_p > 0:
            solarized = torch.rand(n, generator=generator, device=device) < self.solarize_p
            draw = replace(draw, solarized=solarized)
        return draw


# CUDA's Philox generators advance their offset in multiples of 4.
PHILOX_OFFSET_STEP = 4


def host_permutation(n: int, generator: torch.Generator) -> list[int]:
    """A random permutation of ``range(n)`` as Python ints, known on the host without a sync.

    A CPU generator draws it directly. An accelerator's generator keeps its seed and offset on
    the host; together they name the point of its random stream, so a host generator seeded from
    them gives the same permutation for the same generator state (the offset then moves on, so
    the next call draws another one). Reading a permutation drawn on the device would make the
    host wait for every kernel queued before it.
    """
    if generator.device.type == "cpu":
        return torch.randperm(n, generator=generator).tolist()
    try:
        offset = generator.get_offset()
    except RuntimeError:  # a generator without a host-side offset: draw on it (a sync)
        return torch.randperm(n, generator=generator, device=generator.device).tolist()
    seed = hashed_seed(f"{generator.initial_seed()}:{offset}")
    generator.set_offset(offset + PHILOX_OFFSET_STEP)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()


def _no_draw(images: Tensor) -> Draw:
    """The parameters of an untouched view: whole image, no flip, identity jitter, colour."""
    n, _, height, width = images.shape
    device = images.device
    no = torch.zeros(n, dtype=torch.bool, device=device)
    factors = _cached(IDENTITY_FACTORS, (1, 4), torch.float32, device).expand(n, 4).clone()
    sigma = torch.zeros(n, device=device)
    return Draw(full_boxes(n, height, width, device), no, no, factors, (), no, no, sigma, no)


def _blocks(images: Tensor, size: int) -> list[slice]:
    """Row ranges to render at a time: L2-sized blocks on CPU, the whole batch elsewhere."""
    n, channels, height, width = images.shape
    if images.device.type != "cpu":
        return [slice(0, n)]
    step = max(1, CPU_BLOCK_ELEMENTS // (channels * size * size))
    return [slice(start, start + step) for start in range(0, n, step)]


def _select_on_host(device: torch.device) -> bool:
    """Whether `_on_subset_` may read the mask on the host: free on the CPU only."""
    return device.type == "cpu"


def _on_subset_(
    views: Tensor,
    mask: Tensor,
    fn: Callable[[Tensor, Tensor | None], Tensor],
    per_image: Tensor | None = None,
) -> None:
    """In place: ``views[mask] = fn(views[mask], per_image[mask])`` for an in-place ``fn``.

    On the CPU only the selected images are processed (blocks where every image, or none, is
    selected without any copy). Elsewhere which images are selected stays on the device: every
    image is processed and the mask picks (``nonzero`` would make the host wait for it).
    """
    if not _select_on_host(views.device):
        torch.where(mask.view(-1, 1, 1, 1), fn(views.clone(), per_image), views, out=views)
        return
    idx = mask.nonzero().squeeze(1)
    if idx.numel() == mask.numel():
        fn(views, per_image)
    elif idx.numel() > 0:
        subset = None if per_image is None else per_image.index_select(0, idx)
        views.index_copy_(0, idx, fn(views.index_select(0, idx), subset))


def _grayscale_(x: Tensor, _: Tensor | None = None) -> Tensor:
    return x.copy_(grayscale(x))


def _blur_(x: Tensor, sigma: Tensor | None, kernel: int) -> Tensor:
    return x.copy_(gaussian_blur(x, sigma, kernel))


def _resize(x: Tensor, size: int) -> Tensor:
    """Bilinear antialiased resize to ``size`` x ``size``, kept in [0, 1]."""
    out = resize_float(x, size)
    return out if out is x else out.clamp_(0, 1)


def _check(aug: Augment) -> None:
    """Reject unknown pipelines and out-of-range settings with a ``ConfigError``."""
    if aug.name not in PIPELINES:
        raise ConfigError(f"unknown augmentation {aug.name!r}; choose one of {PIPELINES}")
    if aug.size < 1:
        raise ConfigError(f"augmentation size must be positive, got {aug.size}")
    if not 0 < aug.scale[0] <= aug.scale[1] <= 1:
        raise ConfigError(f"crop scale must satisfy 0 < lo <= hi <= 1, got {aug.scale}")
    if not 0 < aug.ratio[0] <= aug.ratio[1]:
        raise ConfigError(f"crop ratio must satisfy 0 < lo <= hi, got {aug.ratio}")
    if aug.interpolation not in INTERPOLATIONS:
        raise ConfigError(
            f"interpolation must be one of {INTERPOLATIONS}, got {aug.interpolation!r}"
        )
    if aug.blur_kernel is not None and (aug.blur_kernel < 0 or aug.blur_kernel % 2 == 0):
        raise ConfigError(
            f"blur kernel must be odd (or None: 10% of the view), got {aug.blur_kernel}"
        )
    if len(aug.blur_sigma) != 2 or not 0 < aug.blur_sigma[0] <= aug.blur_sigma[1]:
        raise ConfigError(f"blur sigma needs 0 < lo <= hi, got {aug.blur_sigma}")
    for key in ("flip_p", "jitter_p", "gray_p", "blur_p", "solarize_p"):
        if not 0 <= getattr(aug, key) <= 1:
            raise ConfigError(f"{key} must be in [0, 1], got {getattr(aug, key)}")
    if len(aug.jitter) != 4 or min(aug.jitter) < 0 or aug.jitter[HUE] > 0.5:
        raise ConfigError(f"jitter needs 4 strengths >= 0 with hue <= 0.5, got {aug.jitter}")


def build_augment(
    name: str,
    size: int,
    *,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip_p: float = 0.5,
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
    jitter_p: float = 0.8,
    gray_p: float = 0.2,
    interpolation: str = "bilinear",
    blur_p: float = 0.0,
    blur_kernel: int | None = None,
    blur_sigma: tuple[float, float] = (0.1, 2.0),
    solarize_p: float = 0.0,
) -> Augment:
    """The pipeline ``name`` ("simclr", "cropflip" or "none") producing ``size`` x ``size`` views.

    "simclr": random resized crop, flip, colour jitter (prob. ``jitter_p``), grayscale
    (prob. ``gray_p``); "cropflip": crop and flip only; "none": float conversion (and an
    antialiased resize when ``size`` differs from the images'). Both random pipelines then blur
    (prob. ``blur_p``, sigma ~ U(``blur_sigma``), odd ``blur_kernel``, None: 10% of ``size``) and
    solarise (prob. ``solarize_p``); ``interpolation`` is the crop's resampling.
    """
    return Augment(
        name,
        size,
        scale=tuple(scale),
        ratio=tuple(ratio),
        flip_p=flip_p,
        jitter=tuple(jitter),
        jitter_p=jitter_p,
        gray_p=gray_p,
        interpolation=interpolation,
        blur_p=blur_p,
        blur_kernel=blur_kernel,
        blur_sigma=tuple(blur_sigma),
        solarize_p=solarize_p,
    )
