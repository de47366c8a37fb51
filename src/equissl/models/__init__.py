"""Backbones and heads."""

from equissl.models.backbones import BACKBONES, ModuleBackbone, as_backbone, build_backbone
from equissl.models.eqresnet import EqResNet
from equissl.models.heads import mlp, plain_head, projector, transformation_head
from equissl.models.queue import KeyQueue
from equissl.models.resnet import ResNet

__all__ = [
    "KeyQueue",
    "BACKBONES",
    "EqResNet",
    "ModuleBackbone",
    "ResNet",
    "as_backbone",
    "build_backbone",
    "mlp",
    "plain_head",
    "projector",
    "transformation_head",
]
