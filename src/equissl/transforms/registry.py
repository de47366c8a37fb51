"""Transformations by name: `get_transformation("rotation", 32)`, products as "a+b[+c]"."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from equissl.errors import ConfigError
from equissl.transforms import pixel_permutations as pp
from equissl.transforms.base import Transformation
from equissl.transforms.blur import blur
from equissl.transforms.photometric import grayscale, invert
from equissl.transforms.product import product

_BUILDERS: dict[str, Callable[[int, int], Transformation]] = {
    "rotation": lambda size, channels: pp.rotation(size),
    "hflip": lambda size, channels: pp.hflip(size),
    "vflip": lambda size, channels: pp.vflip(size),
    "rotflip": lambda size, channels: pp.rotflip(size),
    "jigsaw": lambda size, channels: pp.jigsaw(size),
    "grayscale": lambda size, channels: grayscale(channels),
    "invert": lambda size, channels: invert(channels),
    "blur": lambda size, channels: blur("blur", size),
    "blur_fixed": lambda size, channels: blur("blur_fixed", size),
    "blur8": lambda size, channels: blur("blur8", size),
}

TRANSFORMS: tuple[str, ...] = tuple(_BUILDERS)


def get_transformation(name: str, size: int, channels: int = 3) -> Transformation:
    """The transformation `name` (a base name or a product "a+b[+c]") for square images of
    side `size` with `channels` channels; cached per (name, size, channels).

    Raises ConfigError (one line, listing the valid names) for an unknown name, and for a
    size below 2 or a channel count below 1.
    """
    parts = [p.strip() for p in str(name).split("+")]
    unknown = [p for p in parts if p not in _BUILDERS]
    if unknown:
        raise ConfigError(
            f"unknown transformation {unknown[0]!r} in {name!r}; choose one of "
            f"{', '.join(TRANSFORMS)} (or a product a+b)"
        )
    if int(size) != size or size < 2:
        raise ConfigError(f"transformation size must be an integer of at least 2, got {size}")
    if int(channels) != channels or channels < 1:
        raise ConfigError(f"transformation channels must be at least 1, got {channels}")
    return _build("+".join(parts), int(size), int(channels))


@cache
def _build(name: str, size: int, channels: int) -> Transformation:
    parts = name.split("+")
    if len(parts) == 1:
        return _BUILDERS[name](size, channels)
    return product([_build(p, size, channels) for p in parts], size)
