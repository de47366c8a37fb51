"""The containers every reader returns: uint8 image tensors with their labels and class names."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ImageSet:
    """One split: uint8 images (N, C, H, W) on the CPU, int64 labels (-1 when unlabeled)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            shape = tuple(self.images.shape)
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {shape}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must be int64 of shape ({self.images.shape[0]},), "
                f"got {self.labels.dtype} {tuple(self.labels.shape)}"
            )
        self.images = self.images.contiguous()

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass
class DataSplits:
    """A dataset: labelled train and test splits, and STL-10's unlabeled split when requested."""

    train: ImageSet
    test: ImageSet
    unlabeled: ImageSet | None
    name: str

    @property
    def num_classes(self) -> int:
        return len(self.train.classes)

    @property
    def image_size(self) -> int:
        """Height of the images (all splits share one size)."""
        return self.train.images.shape[2]

    @property
    def channels(self) -> int:
        return self.train.images.shape[1]
