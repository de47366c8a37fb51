"""Unit cells: two-phase permittivity images of one square-lattice cell (a = 1).

A cell is a (size, size) image whose pixel (i, j) is the square [i/size, (i+1)/size) x
[j/size, (j+1)/size) of the cell, with permittivity 1 (air) or eps_high. Cells are level sets of
random real Fourier sums over the lowest spatial frequencies, thresholded at a random level so
that the filling fraction of the high-permittivity phase varies.

Families:
- `blob`: free-form (plane group p1 in general).
- `pm`: mirror-symmetric, plane group pm: eps(x, y) = eps(x, -y) with the mirror lines along
  dim -2 (vertical lines in an image), i.e. `cell == cell.flip(-1)` exactly. On the pixel grid
  the reflection y -> -y maps pixel centres onto pixel centres, so the symmetry is exact.
"""

from __future__ import annotations

import math

import torch

from equissl.errors import ConfigError, DataError

FAMILIES = ("blob", "pm")


def check_cell(eps: torch.Tensor) -> torch.Tensor:
    """Validate one cell (S, S) or a batch (n, S, S); return the batch as float64 (n, S, S).

    Raises DataError, with one line, for a non-square or wrongly shaped image, a non-real dtype,
    NaN or infinite values, or a permittivity below 1.
    """
    if not isinstance(eps, torch.Tensor):
        raise DataError(f"photonic cell: expected a tensor, got {type(eps).__name__}")
    if eps.dim() not in (2, 3):
        raise DataError(
            f"photonic cell: expected shape (S, S) or (n, S, S), got {tuple(eps.shape)}"
        )
    size = eps.shape[-1]
    if eps.shape[-2] != size or size < 2:
        raise DataError(
            f"photonic cell: the image must be square (S, S) with S >= 2, got {tuple(eps.shape)}"
        )
    if eps.is_complex() or eps.dtype == torch.bool:
        raise DataError(f"photonic cell: permittivity must be real numbers, got {eps.dtype}")
    batch = eps.reshape(-1, size, size).to(torch.float64)
    if batch.numel() == 0:
        return batch
    finite = torch.isfinite(batch).flatten(1).all(dim=1)
    if not bool(finite.all()):
        index = int((~finite).nonzero()[0])
        raise DataError(f"photonic cell: NaN or infinite permittivity in cell {index}")
    low = batch.flatten(1).amin(dim=1)
    if bool((low < 1).any()):
        index = int((low < 1).nonzero()[0])
        raise DataError(
            f"photonic cell: permittivity {float(low[index]):.4g} below 1 in cell {index}; "
            "cells hold dielectrics with epsilon >= 1 (air is 1)"
        )
    return batch


def generate_cells(
    family: str,
    n: int,
    seed: int = 0,
    *,
    generator: torch.Generator | None = None,
    eps_range: tuple[float, float] = (2.0, 20.0),
    fill_range: tuple[float, float] = (0.2, 0.8),
    max_frequency: int = 2,
    size: int = 32,
) -> torch.Tensor:
    """Random two-phase cells, (n, size, size) float32 holding 1 and one eps_high per cell.

    The field sum_{(p, q) != 0, |p|, |q| <= max_frequency} Re[c_pq exp(2 pi i (p x + q y))],
    with standard complex normal c_pq, is sampled at the pixel centres; `pm` adds its mirror
    image. The pixels above the field's (1 - fill) quantile get eps_high, the rest 1, with fill
    and eps_high drawn uniformly from fill_range and eps_range per cell. The draw is
    reproducible: `generator` if given, else a fresh generator seeded with `seed`.
    """
    if family not in FAMILIES:
        raise ConfigError(f"unknown photonic cell family {family!r}; choose one of {FAMILIES}")
    if not (isinstance(n, int) and n >= 0):
        raise ConfigError(f"photonic cell count must be an integer >= 0, got {n!r}")
    if not 1 <= eps_range[0] <= eps_range[1]:
        raise ConfigError(f"photonic eps_range must satisfy 1 <= low <= high, got {eps_range}")
    if not 0 <= fill_range[0] <= fill_range[1] <= 1:
        raise ConfigError(f"photonic fill_range must lie within [0, 1], got {fill_range}")
    if not (isinstance(max_frequency, int) and max_frequency >= 1):
        raise ConfigError(f"photonic max_frequency must be an integer >= 1, got {max_frequency}")
    if not (isinstance(size, int) and size >= 2 * max_frequency + 1):
        raise ConfigError(f"photonic cell size must be >= 2 max_frequency + 1, got {size!r}")
    if generator is None:
        generator = torch.Generator().manual_seed(seed)

    freqs = torch.arange(-max_frequency, max_frequency + 1, dtype=torch.float64)
    p, q = (g.reshape(-1) for g in torch.meshgrid(freqs, freqs, indexing="ij"))
    nonzero = (p != 0) | (q != 0)
    p, q = p[nonzero], q[nonzero]
    centres = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    phase = 2 * math.pi * (p[:, None, None] * centres[:, None] + q[:, None, None] * centres)
    basis = torch.polar(torch.ones_like(phase), phase)  # (modes, size, size)

    coeffs = torch.randn(n, p.numel(), 2, generator=generator, dtype=torch.float64)
    coeffs = torch.view_as_complex(coeffs.contiguous())
    fill = torch.empty(n, dtype=torch.float64).uniform_(*fill_range, generator=generator)
    eps_high = torch.empty(n, dtype=torch.float64).uniform_(*eps_range, generator=generator)

    field = torch.einsum("nm,mij->nij", coeffs, basis).real
    if family == "pm":
        field = field + field.flip(-1)  # exactly symmetric: float addition commutes
    high_count = (fill * size * size).round().long()
    ranked = field.flatten(1).sort(dim=1, descending=True).values
    level = ranked.gather(1, (high_count - 1).clamp(min=0)[:, None])[:, :, None]
    high = (field >= level) & (high_count > 0)[:, None, None]
    one = torch.ones((), dtype=torch.float64)
    return torch.where(high, eps_high[:, None, None], one).to(torch.float32)


def rod_cell(eps_rod: float = 8.9, radius: float = 0.2, size: int = 32) -> torch.Tensor:
    """A dielectric rod of radius `radius` (in units of a) centred in an air cell, float64.

    A pixel belongs to the rod when its centre does. The default is the square lattice of
    alumina rods of Joannopoulos et al., "Photonic Crystals: Molding the Flow of Light" (TM gap
    between bands 1 and 2).
    """
    centres = (torch.arange(size, dtype=torch.float64) + 0.5) / size - 0.5
    inside = centres[:, None] ** 2 + centres[None, :] ** 2 <= radius**2
    rod = torch.full((size, size), float(eps_rod), dtype=torch.float64)
    return torch.where(inside, rod, torch.ones_like(rod))
