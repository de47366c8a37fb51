"""SVHN's cropped digits in the official format: train_32x32.mat and test_32x32.mat, MATLAB v5
files holding X (32, 32, 3, N) uint8 and y (N, 1) with 10 for the
digit 0. Not cached: the arrays are uint8 already."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from equissl.data.sources import corrupt_source
from equissl.data.types import DataSplits, ImageSet
from equissl.errors import DataError

FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
CLASSES = [str(d) for d in range(10)]
FIX = "re-download it from the SVHN page (format 2, cropped digits)"


def read_mat(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, 32, 32) uint8 images and int64 labels 0-9 (the stored 10 is the digit 0)."""
    from scipy.io import loadmat  # scipy comes with scikit-learn

    try:
        mat = loadmat(file, variable_names=("X", "y"))
        images = np.asarray(mat["X"])
        labels = np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    except Exception as exc:  # noqa: BLE001 - scipy raises many types for bad files
        raise corrupt_source(file, exc, FIX) from None
    if images.dtype != np.uint8 or images.shape[:3] != (32, 32, 3):
        raise corrupt_source(file, ValueError(f"X is {images.dtype} {images.shape}"), FIX)
    if images.shape[3] != len(labels):
        raise corrupt_source(
            file, ValueError(f"{images.shape[3]} images, {len(labels)} labels"), FIX
        )
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise corrupt_source(file, ValueError("labels outside 1-10"), FIX)
    return np.ascontiguousarray(images.transpose(3, 2, 0, 1)), labels % 10


def read_svhn(path: Path) -> DataSplits:
    """Train (73,257) and test (26,032) splits from the folder holding the .mat files."""
    if path.is_file():
        raise DataError(f"{path} is a file; point data.path at the folder holding {FILES['train']}")
    for name in FILES.values():
        if not (path / name).is_file():
            raise DataError(f"missing {name} in {path}; expected {', '.join(FILES.values())}")
    parts = []
    for name in FILES.values():
        images, labels = read_mat(path / name)
        parts.append(ImageSet(torch.from_numpy(images), torch.from_numpy(labels), CLASSES))
    return DataSplits(parts[0], parts[1], None, "svhn")
