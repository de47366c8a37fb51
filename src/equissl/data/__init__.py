"""Datasets as uint8 image tensors: CIFAR-10/100, STL-10, ImageFolder (folder or zip) and the
built-in digits, decoded once into a cache, then subset, converted and resized on load."""

from equissl.data.device import place_on_device
from equissl.data.load import load_data, load_image_dataset
from equissl.data.subset import balanced_subset
from equissl.data.types import DataSplits, ImageSet

__all__ = [
    "DataSplits",
    "ImageSet",
    "balanced_subset",
    "load_data",
    "load_image_dataset",
    "place_on_device",
]
