"""Backbones and heads."""

from equissl.models.heads import projector, transformation_head
from equissl.models.resnet import ResNet, build_backbone

__all__ = ["ResNet", "build_backbone", "projector", "transformation_head"]
