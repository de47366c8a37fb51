"""MNIST, FashionMNIST and KMNIST in the official IDX format, gzip-compressed or raw.

An IDX file is a big-endian header (two zero bytes, a type code, the number of dimensions, one
uint32 per dimension) followed by the values in row-major order. Not cached: the files are uint8
arrays already, and all three sets hold 70,000 28x28 images.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from equissl.data.sources import corrupt_source
from equissl.data.types import DataSplits, ImageSet
from equissl.errors import DataError

UBYTE = 0x08  # the only type code the three datasets use
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CLASSES = {
    "mnist": [str(d) for d in range(10)],
    "fashionmnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "kmnist": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
}
FOLDERS = {"mnist": "MNIST", "fashionmnist": "FashionMNIST", "kmnist": "KMNIST"}
FIX = "re-download it (gzip or raw IDX)"


def parse_idx(data: bytes, where: str) -> np.ndarray:
    """The uint8 array stored in the IDX bytes `data`; DataError naming `where` when the header
    or the length is wrong."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise corrupt_source(where, ValueError("no IDX header (magic number)"), FIX)
    if data[2] != UBYTE:
        raise corrupt_source(
            where, ValueError(f"type code 0x{data[2]:02x}, expected 0x08 (ubyte)"), FIX
        )
    ndim = data[3]
    if ndim == 0 or len(data) < 4 + 4 * ndim:
        raise corrupt_source(where, ValueError(f"a header of {ndim} dimensions is cut short"), FIX)
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = memoryview(data)[4 + 4 * ndim :]
    if len(body) != int(np.prod(shape, dtype=np.int64)):
        why = f"{len(body)} bytes of values for shape {shape}"
        raise corrupt_source(where, ValueError(why), FIX)
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, f"{stem}.gz"):
        if (folder / name).is_file():
            return folder / name
    dotted = stem.replace("-idx", ".idx")  # some mirrors name them t10k-images.idx3-ubyte
    for name in (dotted, f"{dotted}.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def find_folder(path: Path, name: str) -> Path:
    """The folder holding the four IDX files: `path`, its `raw/`, or torchvision's
    `<Name>/raw/` under it."""
    if path.is_file():
        raise DataError(f"{path} is a file; point data.path at the folder holding the IDX files")
    candidates = (path, path / "raw", path / FOLDERS[name], path / FOLDERS[name] / "raw")
    for folder in candidates:
        if _find(folder, FILES["train_images"]) is not None:
            return folder
    raise DataError(
        f"no {FILES['train_images']}[.gz] in {path}; expected the four {name} IDX files "
        f"({', '.join(FILES.values())}, gzip or raw)"
    )


def read_file(file: Path) -> np.ndarray:
    """One IDX file, gunzipped when it ends in .gz."""
    try:
        data = file.read_bytes()
        if file.suffix == ".gz":
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise corrupt_source(file, exc, FIX) from None
    return parse_idx(data, str(file))


def read_idx_set(path: Path, name: str) -> DataSplits:
    """Train (60,000) and test (10,000) splits of `name` (mnist, fashionmnist or kmnist):
    uint8 (N, 1, 28, 28) images, labels 0-9."""
    folder = find_folder(path, name)
    arrays = {}
    for key, stem in FILES.items():
        file = _find(folder, stem)
        if file is None:
            raise DataError(
                f"missing {stem}[.gz] in {folder}; expected {', '.join(FILES.values())}"
            )
        arrays[key] = (read_file(file), file)
    parts = []
    for split in ("train", "test"):
        (images, image_file), (labels, label_file) = (
            arrays[f"{split}_images"],
            arrays[f"{split}_labels"],
        )
        if images.ndim != 3 or labels.ndim != 1:
            raise corrupt_source(
                image_file, ValueError(f"shapes {images.shape} and {labels.shape}"), FIX
            )
        if len(images) != len(labels):
            why = ValueError(f"{len(images)} images but {len(labels)} labels in {label_file.name}")
            raise corrupt_source(image_file, why, FIX)
        if labels.size and labels.max() >= 10:
            raise corrupt_source(label_file, ValueError(f"label {labels.max()} outside 0-9"), FIX)
        parts.append(
            ImageSet(
                torch.from_numpy(images.copy()).unsqueeze(1),
                torch.from_numpy(labels.astype(np.int64)),
                CLASSES[name],
            )
        )
    return DataSplits(parts[0], parts[1], None, name)
