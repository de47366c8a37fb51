"""Equivariance transformations with their label spaces: batched, exact and sync-free."""

from equissl.transforms.base import Transformation
from equissl.transforms.registry import TRANSFORMS, get_transformation
from equissl.transforms.rotation import expand_rotations, rotate

__all__ = ["TRANSFORMS", "Transformation", "expand_rotations", "get_transformation", "rotate"]
