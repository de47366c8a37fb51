"""Offline evaluation of frozen encoders: feature extraction, linear probe, weighted kNN and
equivariance metrics."""

from equissl.eval.equivariance import equivariance_metrics
from equissl.eval.features import extract_features
from equissl.eval.knn import knn_accuracy
from equissl.eval.linear import linear_probe

__all__ = ["equivariance_metrics", "extract_features", "knn_accuracy", "linear_probe"]
