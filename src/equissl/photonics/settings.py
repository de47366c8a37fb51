"""Numerical settings of the photonic-crystal labels: plane waves, k-grid, bands, DOS grid."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from equissl.errors import ConfigError


@dataclass(frozen=True)
class PhCSettings:
    """How a unit cell becomes a DOS label.

    order: plane-wave order m; the basis holds the (2m+1)^2 reciprocal vectors G = 2 pi (p, q)
        with |p|, |q| <= m.
    k_grid: n, for the uniform n x n Bloch-vector grid over the full Brillouin zone, offset from
        Gamma (see `equissl.photonics.kpoints.k_grid`).
    bands: how many of the lowest bands to keep; None keeps all (2m+1)^2 eigenvalues, which costs
        nothing extra (the eigensolver returns them all), so no state below f_max is dropped
        for want of bands at any permittivity (see `equissl.photonics.dos`).
    n_freq, f_max: the DOS grid, n_freq points from 0 to f_max in normalised frequency
        omega a / (2 pi c).
    sigma: standard deviation of the Gaussian broadening of each state, in the same units. It
        must be coarse enough to smooth over the k-grid spacing: the steepest bands (near-vacuum
        cells, group velocity ~c) move by ~1/k_grid between neighbouring k-points.

    The defaults keep each source of error near 1-2 % (L1 of the DOS): order 7 against order 11,
    and the 10 x 10 grid with sigma 0.03 against a 24 x 24 grid (the worst cells, eps_high = 2
    at 20 % fill, reach 2 %; an 8 x 8 grid reaches 6 %). One label costs 0.3-0.45 s on one
    CPU thread (measured on a busy 2-core machine), almost all of it in the 50 Hermitian
    eigenvalue problems of size 225; k_grid=8 brings it to about 0.3 s.
    """

    order: int = 7
    k_grid: int = 10
    bands: int | None = None
    n_freq: int = 500
    f_max: float = 1.2
    sigma: float = 0.03

    def __post_init__(self) -> None:
        if not (isinstance(self.order, int) and 1 <= self.order <= 20):
            raise ConfigError(f"photonics order must be an integer in 1..20, got {self.order!r}")
        if not (isinstance(self.k_grid, int) and 1 <= self.k_grid <= 64):
            raise ConfigError(f"photonics k_grid must be an integer in 1..64, got {self.k_grid!r}")
        if self.bands is not None and not (
            isinstance(self.bands, int) and 1 <= self.bands <= self.plane_waves
        ):
            raise ConfigError(
                f"photonics bands must be None or an integer in 1..{self.plane_waves} "
                f"(the plane-wave count at order {self.order}), got {self.bands!r}"
            )
        if not (isinstance(self.n_freq, int) and self.n_freq >= 2):
            raise ConfigError(f"photonics n_freq must be an integer >= 2, got {self.n_freq!r}")
        if not self.f_max > 0:
            raise ConfigError(f"photonics f_max must be positive, got {self.f_max!r}")
        if not 0 < self.sigma < self.f_max:
            raise ConfigError(f"photonics sigma must be in (0, f_max), got {self.sigma!r}")

    @property
    def plane_waves(self) -> int:
        """Size of the plane-wave basis, (2m+1)^2."""
        return (2 * self.order + 1) ** 2

    def frequency_grid(self) -> torch.Tensor:
        """The DOS grid: n_freq normalised frequencies from 0 to f_max, float64."""
        return torch.linspace(0.0, self.f_max, self.n_freq, dtype=torch.float64)
