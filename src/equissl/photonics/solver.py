"""TM band structure of square-lattice photonic crystals by plane-wave expansion.

For TM polarisation (E along z, out of the plane) Maxwell's equations reduce to the scalar
problem -laplacian E = (omega/c)^2 eps(r) E. With the Bloch expansion
E = sum_G e_G exp(i (k + G) . r) this becomes the Hermitian generalised eigenproblem

    |k + G|^2 e_G = (omega/c)^2 sum_G' eps_{G-G'} e_G',   i.e.  D(k) e = lambda B e,

with B the Toeplitz matrix of the Fourier coefficients of eps. We use the *direct* (Laurent)
rule, B = [eps_{G-G'}], not the inverse rule B = [(1/eps)_{G-G'}]^-1: E_z is tangential to
every interface of an in-plane structure, hence continuous, and the product eps E_z of a
discontinuous and a continuous factor is what the direct rule factorises correctly (Li's
factorisation rules); the inverse rule is the right one for normal components (TE). The
coefficients are the exact Fourier coefficients of the piecewise-constant pixel image, an FFT
times a sinc per axis, so eps_0 is the mean and the truncated problem is a Galerkin (Ritz)
projection of the staircase medium: its eigenvalues bound the true ones from above and decrease
monotonically as the plane-wave order grows.

B is Hermitian positive definite (its eigenvalues are >= min eps >= 1) and independent of k, so
it is inverted once per cell through its Cholesky factor; for each k the standard Hermitian
problem D^1/2 B^-1 D^1/2 y = lambda y (the same spectrum) is solved with `torch.linalg.eigvalsh`
in float64, batched over k-points. Units: a = 1, Bloch vectors kappa = k a / (2 pi), and the
returned normalised frequencies f = omega a / (2 pi c) = sqrt(lambda) with D = |kappa + n|^2.
"""

from __future__ import annotations

import math

import torch

from equissl.photonics.cells import check_cell

# Cells per eigensolver call: caps the (cells, k, N, N) complex batch near 64 MiB.
_BATCH_BYTES = 64 * 2**20


def plane_wave_indices(order: int) -> torch.Tensor:
    """The integer reciprocal vectors n = (p, q), |p|, |q| <= order, as (N, 2) int64."""
    r = torch.arange(-order, order + 1)
    return torch.stack(torch.meshgrid(r, r, indexing="ij"), dim=-1).reshape(-1, 2)


def epsilon_matrix(cells: torch.Tensor, order: int) -> torch.Tensor:
    """The Toeplitz matrices [eps_{G-G'}] of a batch of cells, (n, N, N) complex128.

    eps_G = integral over the cell of eps(r) exp(-i G . r) for the piecewise-constant image with
    pixel (i, j) covering [i/S, (i+1)/S) x [j/S, (j+1)/S): the FFT of the pixel values divided
    by S^2, times the pixel's form factor sinc(p/S) sinc(q/S) and the phase of its centre. The
    FFT is periodic in (p, q) but the form factor is not, so this is exact at every order.
    """
    batch = check_cell(cells)
    size = batch.shape[-1]
    spectrum = torch.fft.fft2(batch) / size**2
    n = plane_wave_indices(order).to(batch.device)
    diff = n[:, None, :] - n[None, :, :]  # (N, N, 2): G - G'
    coeffs = spectrum[:, diff[..., 0] % size, diff[..., 1] % size]
    d = diff.to(torch.float64) / size
    form = torch.sinc(d).prod(dim=-1) * torch.polar(
        torch.ones_like(d[..., 0]), -math.pi * d.sum(dim=-1)
    )
    return coeffs * form


def band_frequencies(
    cells: torch.Tensor, kpoints: torch.Tensor, order: int, bands: int | None = None
) -> torch.Tensor:
    """The lowest TM band frequencies omega a / (2 pi c) at each Bloch vector.

    cells: (S, S) or (n, S, S) permittivity images (validated by `check_cell`).
    kpoints: (K, 2) Bloch vectors in units of 2 pi / a.
    order: plane-wave order m: (2m+1)^2 plane waves.
    bands: how many of the lowest frequencies to return; None returns all (2m+1)^2.
    Returns (n, K, bands) float64, ascending along the last dim, on the cells' device.
    """
    batch = check_cell(cells)
    n = plane_wave_indices(order).to(batch.device)
    size = n.shape[0]
    bands = size if bands is None else bands
    if not 1 <= bands <= size:
        raise ValueError(f"bands must be in 1..{size} at order {order}, got {bands}")
    kpoints = torch.as_tensor(kpoints, dtype=torch.float64, device=batch.device).reshape(-1, 2)
    scale = (kpoints[:, None, :] + n.to(torch.float64)).norm(dim=-1)  # |kappa + n|, (K, N)

    if batch.shape[0] == 0:
        return scale.new_zeros(0, kpoints.shape[0], bands)
    step = max(1, _BATCH_BYTES // (16 * size * size * max(1, kpoints.shape[0])))
    out = []
    for chunk in batch.split(step):
        inverse = torch.cholesky_inverse(torch.linalg.cholesky(epsilon_matrix(chunk, order)))
        matrices = scale[None, :, :, None] * inverse[:, None] * scale[None, :, None, :]
        eigenvalues = torch.linalg.eigvalsh(matrices)[..., :bands]
        out.append(eigenvalues.clamp(min=0).sqrt())
    return torch.cat(out)
