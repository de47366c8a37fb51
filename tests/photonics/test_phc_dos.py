"""The k-grid, the DOS normalisation, the target and its completeness with few bands."""

import math

import pytest
import torch

from equissl.photonics import (
    PhCSettings,
    band_frequencies,
    covered_frequency,
    density_of_states,
    dos_target,
    empty_lattice_dos,
    generate_cells,
    homogeneous_medium_target,
    k_grid,
    k_path,
)


def _as_set(points):
    return {(round(float(a), 9), round(float(b), 9)) for a, b in points}


@pytest.mark.parametrize("n", [1, 4, 5, 8])
def test_k_grid_covers_the_zone_symmetrically_with_time_reversal_weights(n):
    kpoints, weights = k_grid(n)
    assert kpoints.shape == (math.ceil(n * n / 2), 2)
    assert float(weights.sum()) == pytest.approx(1.0, abs=1e-15)
    assert bool((kpoints.abs() < 0.5).all())
    full = torch.cat([kpoints, -kpoints])
    assert len(_as_set(full)) == n * n  # k and -k together give the whole n x n grid
    rotated = torch.stack([-full[:, 1], full[:, 0]], dim=1)
    assert _as_set(rotated) == _as_set(full) == _as_set(full.flip(-1))
    if n % 2:  # Gamma-centred: Gamma is its own time-reversal partner
        gamma = (kpoints.abs().sum(dim=1) == 0).nonzero()[0]
        assert float(weights[gamma]) == pytest.approx(1 / (n * n))


def test_k_path_visits_gamma_x_m_gamma():
    path = k_path(4)
    assert path.shape == (13, 2)
    assert path[[0, 4, 8, 12]].tolist() == [[0, 0], [0.5, 0], [0.5, 0.5], [0, 0]]


def test_dos_counts_one_state_per_band_and_does_not_depend_on_the_grid_size():
    grid = torch.linspace(-1.0, 3.0, 4001, dtype=torch.float64)
    flat = torch.tensor([0.4, 0.9, 1.1], dtype=torch.float64)
    for n_k in (1, 7):
        freqs = flat.expand(2, n_k, 3)  # dispersionless bands, two cells
        dos = density_of_states(freqs, torch.full((n_k,), 1.0 / n_k), grid, 0.02)
        assert dos.shape == (2, 4001)
        area = torch.trapezoid(dos, grid)
        torch.testing.assert_close(area, torch.full((2,), 3.0, dtype=torch.float64))
        peak = 1 / (math.sqrt(2 * math.pi) * 0.02)
        assert float(dos[0, 1400]) == pytest.approx(peak)  # the grid point at f = 0.4


def test_empty_lattice_dos_is_the_broadened_linear_law():
    grid = torch.linspace(0.0, 1.2, 121, dtype=torch.float64)
    exact = empty_lattice_dos(grid, 0.03)
    far = grid > 6 * 0.03
    torch.testing.assert_close(exact[far], 2 * math.pi * grid[far], rtol=1e-9, atol=0)
    assert float(exact[0]) == pytest.approx(2 * math.pi * 0.03 / math.sqrt(2 * math.pi))
    torch.testing.assert_close(empty_lattice_dos(grid, 0.03, eps=5.0), 5 * exact)


def test_dos_target_is_batched_and_vanishes_for_vacuum():
    settings = PhCSettings(order=3, k_grid=16, sigma=0.05, n_freq=121)
    vacuum = dos_target(torch.ones(32, 32), settings)
    assert vacuum.shape == (1, 121) and vacuum.dtype == torch.float64
    middle = settings.frequency_grid() > 0.3
    assert float(vacuum[0, middle].abs().max()) < 0.02 * 2 * math.pi * 1.2
    cells = generate_cells("pm", 3, seed=0)
    small = PhCSettings(order=3, k_grid=4, n_freq=121)
    batched = dos_target(cells, small)
    one_by_one = torch.cat([dos_target(cell, small) for cell in cells])
    torch.testing.assert_close(batched, one_by_one, rtol=1e-12, atol=1e-12)
    assert float(batched.abs().max()) > 1.0  # dielectrics pull many states below f = 1.2
    assert dos_target(torch.ones(0, 32, 32), small).shape == (0, 121)


def test_homogeneous_medium_reference_is_exact_for_a_homogeneous_cell():
    settings = PhCSettings(order=3, k_grid=16, sigma=0.05, n_freq=121)
    for eps in (2.5, 4.0):
        cell = torch.full((32, 32), eps, dtype=torch.float64)
        middle = (settings.frequency_grid() > 0.3) & (settings.frequency_grid() < 1.0)
        solved = dos_target(cell, settings)[0, middle]
        reference = homogeneous_medium_target(cell, settings)[0, middle]
        torch.testing.assert_close(reference, solved, rtol=1e-6, atol=1e-6)
    cells = generate_cells("blob", 3, seed=0)
    empty = empty_lattice_dos(PhCSettings().frequency_grid(), PhCSettings().sigma)
    expected = (cells.double().mean((1, 2))[:, None] - 1) * empty
    torch.testing.assert_close(homogeneous_medium_target(cells), expected)


def test_dos_from_a_few_bands_is_complete_below_the_covered_frequency():
    cells = generate_cells("blob", 2, seed=1, eps_range=(12.0, 12.0))
    kpoints, weights = k_grid(4)
    grid = torch.linspace(0.0, 1.2, 241, dtype=torch.float64)
    every = band_frequencies(cells, kpoints, 4)
    few = band_frequencies(cells, kpoints, 4, bands=8)
    torch.testing.assert_close(few, every[..., :8])
    covered = covered_frequency(few)
    assert covered.shape == (2,) and bool((covered < 1.2).all())  # 8 bands do not reach 1.2
    full_dos = density_of_states(every, weights, grid, 0.01)
    few_dos = density_of_states(few, weights, grid, 0.01)
    for cell in range(2):
        safe = grid < covered[cell] - 8 * 0.01
        torch.testing.assert_close(few_dos[cell, safe], full_dos[cell, safe])
        assert float((full_dos[cell] - few_dos[cell]).abs().max()) > 1.0  # missing states above
