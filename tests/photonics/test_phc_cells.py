"""Unit cells: two-phase values, mirror symmetry, reproducibility, and input validation."""

import pytest
import torch

from equissl.errors import ConfigError, DataError
from equissl.photonics import (
    PhCSettings,
    band_frequencies,
    check_cell,
    dos_target,
    generate_cells,
    rod_cell,
)


@pytest.mark.parametrize("family", ["blob", "pm"])
def test_cells_are_two_phase_within_range(family):
    cells = generate_cells(family, 24, seed=3, eps_range=(2.0, 20.0), fill_range=(0.2, 0.8))
    assert cells.shape == (24, 32, 32) and cells.dtype == torch.float32
    high = cells.flatten(1).amax(dim=1)
    assert bool(((high >= 2.0) & (high <= 20.0)).all())
    assert len(set(high.tolist())) == 24  # one eps_high drawn per cell
    two_phase = (cells == 1) | (cells == high[:, None, None])
    assert bool(two_phase.all())
    fill = (cells > 1).flatten(1).float().mean(dim=1)
    assert bool(((fill >= 0.2 - 2 / 1024) & (fill <= 0.8 + 2 / 1024)).all())
    assert float(fill.std()) > 0.05  # the filling fraction varies


def test_pm_cells_are_exactly_mirror_symmetric_and_blobs_are_not():
    pm = generate_cells("pm", 16, seed=1)
    assert torch.equal(pm, pm.flip(-1))
    blob = generate_cells("blob", 16, seed=1)
    symmetric = [
        torch.equal(c, c.flip(d)) or torch.equal(c, c.transpose(0, 1)) for c in blob for d in (0, 1)
    ]
    assert sum(symmetric) == 0


def test_generation_is_reproducible_by_seed_and_generator():
    a = generate_cells("blob", 5, seed=7)
    assert torch.equal(a, generate_cells("blob", 5, seed=7))
    assert not torch.equal(a, generate_cells("blob", 5, seed=8))
    b = generate_cells("pm", 5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(b, generate_cells("pm", 5, seed=7))


def test_generation_settings_are_validated():
    with pytest.raises(ConfigError, match="family"):
        generate_cells("p4m", 2)
    with pytest.raises(ConfigError, match="eps_range"):
        generate_cells("blob", 2, eps_range=(0.5, 20.0))
    with pytest.raises(ConfigError, match="fill_range"):
        generate_cells("blob", 2, fill_range=(0.2, 1.5))


def test_rod_cell_is_centred_and_fully_symmetric():
    rod = rod_cell(8.9, 0.2, 32)
    assert set(rod.unique().tolist()) == {1.0, 8.9}
    assert abs(float((rod > 1).double().mean()) - torch.pi * 0.04) < 0.01
    for image in (rod.flip(0), rod.flip(1), rod.T, torch.rot90(rod)):
        assert torch.equal(image, rod)


def _ones_with(shape, index, value):
    cell = torch.ones(shape)
    cell[index] = value
    return cell


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.full((32, 32), 0.5), "below 1"),
        (torch.ones(32, 16), "square"),
        (torch.ones(2, 3, 32, 32), "shape"),
        (_ones_with((32, 32), (3, 4), float("nan")), "NaN"),
        (_ones_with((2, 32, 32), (1, 0, 0), float("inf")), "infinite permittivity in cell 1"),
        (torch.ones(32, 32, dtype=torch.complex64), "real"),
    ],
)
def test_bad_cells_raise_one_line_data_error(bad, message):
    with pytest.raises(DataError, match=message) as info:
        check_cell(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(DataError):
        dos_target(bad, PhCSettings(order=1, k_grid=1))


def test_solver_validates_cells_and_accepts_float32_batches():
    with pytest.raises(DataError, match="cell 1"):
        band_frequencies(torch.stack([torch.ones(8, 8), torch.zeros(8, 8)]), torch.zeros(1, 2), 1)
    cells = generate_cells("blob", 2, seed=0, size=16)
    assert check_cell(cells).dtype == torch.float64
    assert band_frequencies(cells, torch.zeros(3, 2), 2, 4).shape == (2, 3, 4)


def test_settings_are_validated():
    assert PhCSettings().plane_waves == 225
    grid = PhCSettings(n_freq=7, f_max=1.2).frequency_grid()
    assert grid.shape == (7,) and float(grid[0]) == 0.0 and float(grid[-1]) == pytest.approx(1.2)
    for bad in ({"order": 0}, {"bands": 26, "order": 2}, {"sigma": 0.0}, {"k_grid": 0}):
        with pytest.raises(ConfigError):
            PhCSettings(**bad)
