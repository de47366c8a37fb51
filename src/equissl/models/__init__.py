"""Backbones and heads."""

from equissl.models.heads import mlp, projector, transformation_head
from equissl.models.resnet import ResNet, build_backbone

__all__ = ["ResNet", "build_backbone", "mlp", "projector", "transformation_head"]
