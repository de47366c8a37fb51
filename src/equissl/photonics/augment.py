"""Batched transformations of unit cells (N, 1, S, S) for self-supervised pretraining.

Invariance augmentations are the *physically invisible* operations: the DOS of a square-lattice
crystal does not change when its cell is rotated by 90 degrees, mirrored (the point group D4 of
the lattice maps the Brillouin-zone grid onto itself) or translated periodically (a change of
origin). No crops, rescaling or intensity changes: they would change the physics.

- blob: a random element of D4 per cell (rotation by k x 90 degrees, optionally mirrored).
- pm:   a random periodic translation (torch.roll by any (dy, dx)) and random mirrors.

E-SimCLR's predicted transformation (4 labels, label 0 the identity) is invisible to the DOS
too, but not to the cell image:

- blob: half-cell translations, label 2a + b rolls by (a S/2, b S/2).
- pm:   90-degree rotations, which turn the cell's mirror line from vertical to horizontal.

Every function draws its randomness from the given generator, on its device, with no per-cell
Python loop.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import torch
from torch import Tensor

from equissl.transforms import Transformation, get_transformation
from equissl.transforms.pixel_permutations import from_table

EPS_AIR = 1.0
EPS_SPAN = 19.0  # generated cells hold eps in [1, 20]: (eps - 1) / 19 lies in [0, 1]


def normalise(cells: Tensor) -> Tensor:
    """Permittivity (N, S, S) to network input (N, 1, S, S): (eps - 1) / 19, air at 0."""
    return ((cells.float() - EPS_AIR) / EPS_SPAN).unsqueeze(1)


def roll_cells(x: Tensor, shifts: Tensor) -> Tensor:
    """Per-cell periodic translation: out[i] = torch.roll(x[i], tuple(shifts[i]), dims=(-2, -1)).

    x: (N, C, H, W); shifts: (N, 2) integer (rows, columns). One gather, no Python loop.
    """
    n, c, h, w = x.shape
    shifts = shifts.to(x.device).long()
    rows = (torch.arange(h, device=x.device) - shifts[:, :1]) % h  # (N, H)
    cols = (torch.arange(w, device=x.device) - shifts[:, 1:]) % w  # (N, W)
    index = (rows[:, :, None] * w + cols[:, None, :]).reshape(n, 1, h * w).expand(n, c, h * w)
    return x.reshape(n, c, h * w).gather(2, index).view(x.shape)


@cache
def half_shift(size: int) -> Transformation:
    """Half-cell translations Z2 x Z2: label 2a + b rolls by (a size/2, b size/2) pixels."""
    if size % 2:
        raise ValueError(f"half-cell translations need an even cell size, got {size}")
    idx = torch.arange(size * size).view(size, size)
    half = size // 2
    outputs = [torch.roll(idx, (a * half, b * half), dims=(0, 1)) for a in (0, 1) for b in (0, 1)]
    return from_table("half_shift", torch.stack([o.reshape(-1) for o in outputs]), size)


def equivariance_transform(family: str, size: int) -> Transformation:
    """The 4-label transformation E-SimCLR predicts for `family` (see the module docstring)."""
    return half_shift(size) if family == "blob" else get_transformation("rotation", size, 1)


def invariance_augment(family: str, size: int) -> Callable[[Tensor, torch.Generator], Tensor]:
    """The physically invisible random augmentation of `family`: (x, generator) -> x'."""
    if family == "blob":
        d4 = get_transformation("rotflip", size, 1)

        def blob(x: Tensor, generator: torch.Generator) -> Tensor:
            return d4.apply(x, d4.sample(x.shape[0], generator, x.device))

        return blob
    flips = get_transformation("hflip+vflip", size, 1)

    def pm(x: Tensor, generator: torch.Generator) -> Tensor:
        shifts = torch.randint(size, (x.shape[0], 2), generator=generator, device=generator.device)
        x = roll_cells(x, shifts)
        return flips.apply(x, flips.sample(x.shape[0], generator, x.device))

    return pm
