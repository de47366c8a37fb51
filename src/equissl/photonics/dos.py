"""Photonic density of states (DOS) and the regression target DOS - empty-lattice DOS.

The DOS is the sum over k-points (weights summing to 1) and bands of a normalised Gaussian of
standard deviation sigma centred on each band frequency f = omega a / (2 pi c): states per unit
normalised frequency per unit cell (a = 1), independent of the k-grid size.

Empty lattice. Free photons in a homogeneous medium of permittivity eps have, per cell,
pi (2 pi f sqrt(eps))^2 / (2 pi)^2 = pi eps f^2 states below f, hence the 2D DOS 2 pi eps f,
linear in f. The target subtracts the empty-lattice DOS (eps = 1: vacuum photons, as in SIB-CL /
E-SSL), taken exactly: 2 pi f broadened by the same Gaussian. The exact form is used rather than
the free bands sampled on the k-grid because a coarse grid samples the steep free bands (group
velocity c) badly; the dielectric cells' flatter bands are sampled far better, so subtracting
the sampled vacuum DOS would add its sampling noise to every label.

Completeness. A DOS built from the lowest B bands counts every state only below the lowest
frequency of band B+1, and the number of bands below f grows like pi <eps> f^2 (Weyl's law):
about 75 below f = 1.2 for a cell filled at 80 % with eps = 20, far more than the first ten.
So by default (`PhCSettings.bands = None`) *all* (2m+1)^2 eigenvalues of the plane-wave problem
are kept (the eigensolver returns them all at no extra cost) and no state below f_max is dropped
for want of bands; with an explicit `bands`, `covered_frequency` says up to where the DOS is
complete. What remains is the plane-wave truncation error: Ritz values are upper bounds, so the
highest states sit slightly too high. At the default order 7 (225 plane waves) the DOS differs
from its order-11 value by at most about 1 % (L1, relative) for generated cells up to eps = 20
filled at 50-80 %, versus 3-8 % at order 5 (test_phc_physics checks the convergence).
"""

from __future__ import annotations

import math

import torch

from equissl.photonics.kpoints import k_grid
from equissl.photonics.settings import PhCSettings
from equissl.photonics.solver import band_frequencies

# Values per chunk of the (cells, states, n_freq) Gaussian evaluation, about 32 MiB.
_CHUNK_VALUES = 4 * 2**20
# States further than this many sigmas above the grid's end contribute below 1e-14.
_REACH = 8.0


def density_of_states(
    freqs: torch.Tensor, weights: torch.Tensor, grid: torch.Tensor, sigma: float
) -> torch.Tensor:
    """Gaussian-broadened DOS, (..., n_freq) float64.

    freqs: (..., K, B) band frequencies at K k-points, in any order; weights: (K,) k-point
    weights summing to 1 (each band then adds unit area: one state per cell); grid: (n_freq,)
    frequencies; sigma: broadening (standard deviation).
    """
    freqs = freqs.to(torch.float64).sort(dim=-1).values
    weights = torch.as_tensor(weights, dtype=torch.float64, device=freqs.device)
    grid = torch.as_tensor(grid, dtype=torch.float64, device=freqs.device)
    lead = freqs.shape[:-2]
    # Drop the bands that lie wholly beyond the grid's reach.
    if freqs.numel():
        needed = int((freqs < grid.max() + _REACH * sigma).sum(dim=-1).max())
        freqs = freqs[..., : max(1, needed)]
    states = freqs.reshape(-1, freqs.shape[-2] * freqs.shape[-1])
    state_weights = weights[:, None].expand(freqs.shape[-2:]).reshape(-1)
    norm = 1.0 / (math.sqrt(2 * math.pi) * sigma)
    step = max(1, _CHUNK_VALUES // max(1, states.shape[1] * grid.numel()))
    out = []
    for chunk in states.split(step):
        z = (grid[None, None, :] - chunk[:, :, None]) / sigma
        out.append(torch.einsum("nsf,s->nf", torch.exp(-0.5 * z * z), state_weights) * norm)
    dos = torch.cat(out) if out else freqs.new_zeros(0, grid.numel())
    return dos.reshape(*lead, grid.numel())


def empty_lattice_dos(grid: torch.Tensor, sigma: float, eps: float = 1.0) -> torch.Tensor:
    """The exact DOS of free photons in a homogeneous medium (vacuum: eps = 1), (n_freq,).

    2 pi eps f (f >= 0) convolved with the Gaussian of standard deviation sigma:
    2 pi eps (f Phi(f / sigma) + sigma phi(f / sigma)), Phi and phi the standard normal CDF
    and density. Equals 2 pi eps f to within 1e-9 relative beyond f = 6 sigma.
    """
    grid = torch.as_tensor(grid, dtype=torch.float64)
    t = grid / sigma
    cdf = 0.5 * torch.special.erfc(-t / math.sqrt(2))
    pdf = torch.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)
    return 2 * math.pi * eps * (grid * cdf + sigma * pdf)


def covered_frequency(freqs: torch.Tensor) -> torch.Tensor:
    """Up to which frequency bands (..., K, B) hold every state: min over k of band B, (...)."""
    return freqs[..., -1].amin(dim=-1)


def dos_target(cells: torch.Tensor, settings: PhCSettings | None = None) -> torch.Tensor:
    """The regression target DOS(cell) - DOS(empty lattice), (n, n_freq) float64.

    cells: (S, S) or (n, S, S) permittivity images (validated; DataError on bad ones). Bands
    come from `band_frequencies` on the settings' time-reversal-reduced k-grid, the DOS is on
    `settings.frequency_grid()`; defaults: `PhCSettings()`.
    """
    settings = settings or PhCSettings()
    kpoints, weights = k_grid(settings.k_grid)
    freqs = band_frequencies(cells, kpoints, settings.order, settings.bands)
    grid = settings.frequency_grid().to(freqs.device)
    dos = density_of_states(freqs, weights, grid, settings.sigma)
    return dos - empty_lattice_dos(grid, settings.sigma)


def homogeneous_medium_target(
    cells: torch.Tensor, settings: PhCSettings | None = None
) -> torch.Tensor:
    """The target that a homogeneous medium of each cell's mean permittivity would have,
    (n, n_freq) float64: (<eps> - 1) x the empty-lattice DOS (the DOS 2 pi eps f is linear in
    eps). A learning-free reference: the effective-medium slope of the DOS, without its bands
    and gaps; exact for a homogeneous cell."""
    settings = settings or PhCSettings()
    eps = torch.as_tensor(cells, dtype=torch.float64).reshape(-1, *cells.shape[-2:]).mean((1, 2))
    empty = empty_lattice_dos(settings.frequency_grid(), settings.sigma)
    return (eps[:, None] - 1) * empty
