"""Equivariance terms, one class per mode, each a `Term` (views, then loss).

`Predict` (E-SSL: the label of the element applied), `Relative` (the element relating two
copies), `Regress` (AugSelf: two views' parameter difference) and `Care` (Gupta et al.: Gram
matching, so the transformation acts as an orthogonal map of the embedding).
"""

from equissl.methods.terms.care import Care
from equissl.methods.terms.labels import LabelHeads
from equissl.methods.terms.parameters import parameter_difference, view_parameters
from equissl.methods.terms.predict import Predict
from equissl.methods.terms.regress import Regress
from equissl.methods.terms.relative import Relative
from equissl.methods.terms.term import Term

__all__ = [
    "Care",
    "LabelHeads",
    "Predict",
    "Regress",
    "Relative",
    "Term",
    "parameter_difference",
    "view_parameters",
]
