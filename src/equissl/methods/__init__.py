"""Methods: compositions of an invariance loss and equivariance terms, built from config."""

from equissl.methods.composed import EquivarianceTerm, Method

__all__ = ["EquivarianceTerm", "Method"]
