"""Methods: compositions of an invariance branch and equivariance terms.

The parts (`invariance/`, `terms/`, `Method`) take plain arguments; `build_method` reads the
configuration and builds them.
"""

from equissl.methods.accuracy import transformation_accuracy
from equissl.methods.build import build_method
from equissl.methods.method import Method
from equissl.methods.terms import Term

__all__ = ["Method", "Term", "build_method", "transformation_accuracy"]
