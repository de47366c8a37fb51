"""Offline evaluation of frozen encoders: feature extraction, linear probe, weighted kNN,
equivariance metrics and embedding geometry (linear/orthogonal action, hue sensitivity)."""

from equissl.eval.equivariance import equivariance_metrics
from equissl.eval.features import extract_features
from equissl.eval.geometry import geometry_metrics, hue_sensitivity
from equissl.eval.knn import knn_accuracy
from equissl.eval.linear import linear_probe

__all__ = [
    "equivariance_metrics",
    "extract_features",
    "geometry_metrics",
    "hue_sensitivity",
    "knn_accuracy",
    "linear_probe",
]
