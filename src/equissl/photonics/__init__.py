"""Photonic crystals for DOS regression (E-SSL / SIB-CL): unit cells, TM bands, density of states.

A label is made in three steps, all batched over cells:

    cells = generate_cells("blob", n, seed=0)          # (n, 32, 32) permittivity images
    target = dos_target(cells, PhCSettings())          # (n, 500): DOS - empty-lattice DOS

or step by step with `k_grid`, `band_frequencies` and `density_of_states`. Units: lattice
constant a = 1, Bloch vectors in units of 2 pi / a, frequencies normalised as omega a / (2 pi c).
"""

from equissl.photonics.cells import FAMILIES, check_cell, generate_cells, rod_cell
from equissl.photonics.dos import (
    covered_frequency,
    density_of_states,
    dos_target,
    empty_lattice_dos,
    homogeneous_medium_target,
)
from equissl.photonics.kpoints import k_grid, k_path
from equissl.photonics.settings import PhCSettings
from equissl.photonics.solver import band_frequencies, epsilon_matrix, plane_wave_indices

__all__ = [
    "FAMILIES",
    "PhCSettings",
    "band_frequencies",
    "check_cell",
    "covered_frequency",
    "density_of_states",
    "dos_target",
    "empty_lattice_dos",
    "epsilon_matrix",
    "generate_cells",
    "homogeneous_medium_target",
    "k_grid",
    "k_path",
    "plane_wave_indices",
    "rod_cell",
]
