"""Physics checks of the TM plane-wave solver and the DOS, each against an independent fact.

Units: a = 1, Bloch vectors in units of 2 pi / a, frequencies f = omega a / (2 pi c).
"""

import math

import pytest
import torch

from equissl.photonics import (
    band_frequencies,
    density_of_states,
    empty_lattice_dos,
    generate_cells,
    k_grid,
    k_path,
    plane_wave_indices,
    rod_cell,
)

GRID = torch.linspace(0.0, 1.2, 241, dtype=torch.float64)
X_AND_M = torch.tensor([[0.5, 0.0], [0.5, 0.5]], dtype=torch.float64)


def _dos(cell, order=4, n_k=6, sigma=0.03):
    kpoints, weights = k_grid(n_k)
    return density_of_states(band_frequencies(cell, kpoints, order), weights, GRID, sigma)[0]


@pytest.mark.parametrize("eps", [1.0, 4.0, 13.0])
def test_homogeneous_cell_gives_free_photon_bands(eps):
    kpoints = torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.13, -0.37], [-0.41, 0.08]])
    freqs = band_frequencies(torch.full((32, 32), eps), kpoints, 3)[0]
    n = plane_wave_indices(3).to(torch.float64)
    exact = (kpoints.double()[:, None, :] + n).norm(dim=-1) / math.sqrt(eps)
    torch.testing.assert_close(freqs, exact.sort(dim=-1).values, rtol=0, atol=1e-12)


def test_homogeneous_dos_grows_linearly_with_the_free_photon_slope():
    eps = 4.0
    kpoints, weights = k_grid(16)
    freqs = band_frequencies(torch.full((32, 32), eps), kpoints, 4)
    dos = density_of_states(freqs, weights, GRID, 0.05)[0]
    middle = (GRID > 0.3) & (GRID < 1.0)
    f, d = GRID[middle], dos[middle]
    design = torch.stack([f, torch.ones_like(f)], dim=1)
    slope, intercept = torch.linalg.lstsq(design, d[:, None]).solution[:, 0]
    residual = (design @ torch.stack([slope, intercept]) - d).norm() / d.norm()
    assert float(residual) < 0.01  # linear
    assert float(slope) == pytest.approx(2 * math.pi * eps, rel=0.02)  # pi eps f^2 states below f
    assert abs(float(intercept)) < 0.05 * float(d.mean())
    torch.testing.assert_close(
        dos[middle], empty_lattice_dos(GRID, 0.05, eps)[middle], rtol=0.02, atol=0
    )


def test_empty_lattice_dos_matches_free_bands_on_a_dense_grid():
    kpoints, weights = k_grid(24)
    n = plane_wave_indices(3).to(torch.float64)
    free = (kpoints[:, None, :] + n).norm(dim=-1)
    sampled = density_of_states(free, weights, GRID, 0.05)
    exact = empty_lattice_dos(GRID, 0.05)
    torch.testing.assert_close(sampled, exact, rtol=0.01, atol=1e-3)
    assert float(exact[-1]) == pytest.approx(2 * math.pi * 1.2, rel=1e-9)


def test_dos_is_invariant_under_rotation_mirror_and_translation():
    cell = generate_cells("blob", 1, seed=5, eps_range=(10.0, 10.0))[0]
    reference = _dos(cell)
    for image in (
        torch.rot90(cell, 1),
        torch.rot90(cell, 2),
        cell.flip(-1),
        cell.flip(-2),
        cell.T,
        torch.roll(cell, shifts=(5, -11), dims=(0, 1)),
    ):
        torch.testing.assert_close(_dos(image), reference, rtol=1e-9, atol=1e-9)
    # a genuinely different cell does change the DOS, so the check above can fail
    other = generate_cells("blob", 1, seed=6, eps_range=(10.0, 10.0))[0]
    assert float((_dos(other) - reference).abs().max()) > 0.1 * float(reference.max())


def test_bands_follow_the_cell_under_translation_and_rotation():
    cell = generate_cells("blob", 1, seed=2)[0]
    kpoints = torch.tensor([[0.1, 0.3], [-0.25, 0.4], [0.5, 0.2]], dtype=torch.float64)
    bands = band_frequencies(cell, kpoints, 3, 6)
    shifted = band_frequencies(torch.roll(cell, (7, 3), (0, 1)), kpoints, 3, 6)
    torch.testing.assert_close(shifted, bands, rtol=1e-10, atol=1e-12)
    # rot90 maps eps(r) to eps(Q r), Q (r1, r2) = (r2, -r1): bands at k move to (-k2, k1)
    rotated_k = torch.stack([-kpoints[:, 1], kpoints[:, 0]], dim=1)
    rotated = band_frequencies(torch.rot90(cell, 1), rotated_k, 3, 6)
    torch.testing.assert_close(rotated, bands, rtol=1e-10, atol=1e-12)


def test_square_lattice_of_rods_has_the_tm_gap_between_bands_one_and_two():
    # Joannopoulos et al., "Photonic Crystals" (2008): eps = 8.9 rods of radius 0.2a in air have
    # a TM gap from about 0.32 to 0.44 (omega a / 2 pi c); this solver gives 0.3225-0.4427 for a
    # 128-pixel cell and 0.326-0.446 for the 32-pixel one (its rod is 3.6 % too small).
    rod = rod_cell(8.9, 0.2, 32)
    path = band_frequencies(rod, k_path(8), 5, 3)[0]
    bottom, top = float(path[:, 0].max()), float(path[:, 1].min())
    assert 0.31 < bottom < 0.34
    assert 0.43 < top < 0.46
    # band 1 peaks at M (index 16) and band 2 bottoms out at X (index 8)
    assert int(path[:, 0].argmax()) == 16 and int(path[:, 1].argmin()) == 8
    kpoints, weights = k_grid(6)
    grid = band_frequencies(rod, kpoints, 5, 3)[0]
    assert bottom >= float(grid[:, 0].max()) and float(grid[:, 1].min()) >= top
    dos = density_of_states(grid[None], weights, GRID, 0.01)[0]
    in_gap = (GRID - bottom > 0.05) & (top - GRID > 0.05)
    assert float(dos[in_gap].max()) < 1e-3 * float(dos.max())


def test_band_edges_converge_monotonically_with_plane_wave_order():
    rod = rod_cell(8.9, 0.2, 32)
    edges = torch.stack(
        [band_frequencies(rod, X_AND_M, m, 2)[0][[1, 0], [0, 1]] for m in range(2, 8)]
    )  # (orders, [band 1 at M, band 2 at X])
    steps = edges[:-1] - edges[1:]
    # Ritz values of a growing basis: non-increasing, with shrinking steps
    assert bool((steps >= -1e-12).all())
    assert bool((steps[1:].abs() < steps[:-1].abs()).all())
    assert float(steps[-1].abs().max()) < 1e-4


def test_dos_converges_with_plane_wave_order():
    cell = generate_cells("blob", 1, seed=4, eps_range=(16.0, 16.0), fill_range=(0.5, 0.5))[0]
    dos = {m: _dos(cell, order=m, n_k=4) for m in (3, 5, 7, 9)}
    error = {m: float((dos[m] - dos[9]).abs().sum() / dos[9].abs().sum()) for m in (3, 5, 7)}
    assert error[3] > error[5] > error[7]
    assert error[7] < 0.03
