"""Offline evaluation of frozen encoders: feature extraction, linear probe and weighted kNN."""

from equissl.eval.features import extract_features
from equissl.eval.knn import knn_accuracy
from equissl.eval.linear import linear_probe

__all__ = ["extract_features", "knn_accuracy", "linear_probe"]
