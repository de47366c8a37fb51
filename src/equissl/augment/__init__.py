"""Batched, reproducible image augmentation on the training device (uint8 in, float views out)."""

from equissl.augment.crop import sample_crop_boxes
from equissl.augment.pipelines import PIPELINES, Augment, build_augment
from equissl.augment.stats import channel_stats, normalize, resize_float, to_float

__all__ = [
    "PIPELINES",
    "Augment",
    "build_augment",
    "channel_stats",
    "normalize",
    "resize_float",
    "sample_crop_boxes",
    "to_float",
]
