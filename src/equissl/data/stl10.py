"""STL-10 in the official binary format (stl10_binary/): raw uint8 images stored column-major.

Not cached: the .bin files already are uint8 arrays, so reading them costs no more than reading
a cache file would, and a cache copy of the 2.7 GB unlabeled split would double its disk use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from equissl.data.sources import corrupt_source
from equissl.data.types import DataSplits, ImageSet
from equissl.errors import DataError

FOLDER = "stl10_binary"
SHAPE = (3, 96, 96)
IMAGE_BYTES = 3 * 96 * 96
FILES = ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "class_names.txt")
FIX = "re-download stl10_binary.tar.gz and re-extract it"


def _find_folder(path: Path) -> Path:
    for folder in (path, path / FOLDER):
        if folder.is_dir() and (folder / "train_X.bin").is_file():
            return folder
    if path.is_file():
        raise DataError(f"{path} is a file; point data.path at the extracted {FOLDER}/ folder")
    folder = path / FOLDER if (path / FOLDER).is_dir() else path
    missing = next(name for name in FILES if not (folder / name).is_file())
    raise DataError(f"missing {missing} in {folder}; expected {FOLDER}/ with {', '.join(FILES)}")


def _require(file: Path) -> Path:
    if not file.is_file():
        raise DataError(
            f"missing {file.name} in {file.parent}; expected {FOLDER}/ with {', '.join(FILES)}"
        )
    return file


def read_images(file: Path) -> np.ndarray:
    """(N, 3, 96, 96) uint8, row-major: each stored image is transposed (it is column-major)."""
    size = _require(file).stat().st_size
    if size == 0 or size % IMAGE_BYTES:
        raise corrupt_source(file, ValueError(f"{size} bytes is not a whole number of images"), FIX)
    stored = np.memmap(file, dtype=np.uint8, mode="r", shape=(size // IMAGE_BYTES, *SHAPE))
    return np.ascontiguousarray(stored.transpose(0, 1, 3, 2))


def read_labels(file: Path, count: int, num_classes: int) -> np.ndarray:
    """int64 labels 0..num_classes-1 (stored as uint8 1..num_classes), one per image."""
    labels = np.fromfile(_require(file), dtype=np.uint8).astype(np.int64) - 1
    if len(labels) != count:
        reason = ValueError(f"{len(labels)} labels for {count} images")
        raise corrupt_source(file, reason, FIX)
    if count and (labels.min() < 0 or labels.max() >= num_classes):
        raise corrupt_source(file, ValueError(f"labels outside 1..{num_classes}"), FIX)
    return labels


def read_stl10(path: Path, *, unlabeled: bool = False) -> DataSplits:
    """Train and test splits from `path` (stl10_binary/ or the folder holding it), plus the
    unlabeled split when `unlabeled`."""
    folder = _find_folder(path)
    names = _require(folder / "class_names.txt").read_text().split("\n")
    classes = [name.strip() for name in names if name.strip()]

    def labelled(split: str) -> ImageSet:
        images = read_images(folder / f"{split}_X.bin")
        labels = read_labels(folder / f"{split}_y.bin", len(images), len(classes))
        return ImageSet(torch.from_numpy(images), torch.from_numpy(labels), classes)

    extra = None
    if unlabeled:
        images = read_images(folder / "unlabeled_X.bin")
        extra = ImageSet(
            torch.from_numpy(images), torch.full((len(images),), -1, dtype=torch.int64), classes
        )
    return DataSplits(labelled("train"), labelled("test"), extra, "stl10")
