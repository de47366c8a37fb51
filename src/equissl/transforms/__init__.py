"""Equivariance transformations with their label spaces."""

from equissl.transforms.rotation import expand_rotations, rotate

__all__ = ["expand_rotations", "rotate"]
