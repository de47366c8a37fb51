"""The built-in default dataset: scikit-learn's bundled 8x8 handwritten digits (no download)."""

from __future__ import annotations

import numpy as np
import torch

from equissl.data.subset import stratified_split
from equissl.data.types import DataSplits, ImageSet

TEST_FRACTION = 0.2
SPLIT_SEED = 0


def read_digits() -> DataSplits:
    """1,797 grey 8x8 digits, 0..16 scaled to uint8 0..255, split 80/20 stratified (seed 0)."""
    from sklearn.datasets import load_digits  # scikit-learn loads only when digits are read

    bunch = load_digits()
    pixels = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
    labels = bunch.target.astype(np.int64)
    classes = [str(c) for c in range(10)]
    train_idx, test_idx = stratified_split(labels, TEST_FRACTION, SPLIT_SEED)

    def split(idx: np.ndarray) -> ImageSet:
        return ImageSet(torch.from_numpy(pixels[idx]), torch.from_numpy(labels[idx]), classes)

    return DataSplits(split(train_idx), split(test_idx), None, "digits")
