"""Invariance branches: the heads and loss that make two views of an image agree, one per file.

Each takes plain arguments (its heads as modules, its numbers); `equissl.methods.build` reads
the configuration and sizes the heads from each method's recipe.
"""

from equissl.methods.invariance.barlow_twins import BarlowTwins
from equissl.methods.invariance.base import Invariance, halves, per_view
from equissl.methods.invariance.byol import BYOL
from equissl.methods.invariance.moco import MoCo
from equissl.methods.invariance.simclr import SimCLR
from equissl.methods.invariance.simsiam import SimSiam
from equissl.methods.invariance.vicreg import VICReg

__all__ = [
    "BYOL",
    "BarlowTwins",
    "Invariance",
    "MoCo",
    "SimCLR",
    "SimSiam",
    "VICReg",
    "halves",
    "per_view",
]
