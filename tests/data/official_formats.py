"""Writers of tiny datasets in the official file formats, for the reader tests."""

from __future__ import annotations

import pickle
import tarfile
import zipfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
STL10_CLASSES = [
    "airplane",
    "bird",
    "car",
    "cat",
    "deer",
    "dog",
    "horse",
    "monkey",
    "ship",
    "truck",
]


@dataclass
class Written:
    """A dataset written to disk and the arrays a reader must return for it."""

    path: Path
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: list[str]
    unlabeled: np.ndarray | None = None


def _pickle(path: Path, obj: dict) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))  # the official batches are protocol 2


def write_cifar10(root: Path, per_batch: int = 3, n_test: int = 4, seed: int = 0) -> Written:
    """cifar-10-batches-py/ with data_batch_1..5, test_batch and batches.meta under root."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rows = rng.integers(0, 256, (5 * per_batch + n_test, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, 5 * per_batch + n_test).tolist()
    for b in range(5):
        part = slice(b * per_batch, (b + 1) * per_batch)
        _pickle(
            folder / f"data_batch_{b + 1}",
            {
                b"batch_label": f"training batch {b + 1} of 5".encode(),
                b"labels": labels[part],
                b"data": rows[part],
                b"filenames": [b"x.png"] * per_batch,
            },
        )
    n = 5 * per_batch
    _pickle(
        folder / "test_batch",
        {b"batch_label": b"testing batch 1 of 1", b"labels": labels[n:], b"data": rows[n:]},
    )
    _pickle(
        folder / "batches.meta",
        {b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_vis": 3072},
    )
    images = rows.reshape(-1, 3, 32, 32)
    labels = np.array(labels)
    return Written(folder, images[:n], labels[:n], images[n:], labels[n:], CIFAR10_CLASSES)


def write_cifar100(root: Path, n_train: int = 6, n_test: int = 3) -> Written:
    """cifar-100-python/ with train, test and meta under root."""
    rng = np.random.default_rng(1)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    classes = [f"class_{i:02d}" for i in range(100)]
    rows = rng.integers(0, 256, (n_train + n_test, 3072), dtype=np.uint8)
    fine = rng.integers(0, 100, n_train + n_test).tolist()
    for name, part in (("train", slice(0, n_train)), ("test", slice(n_train, None))):
        _pickle(
            folder / name,
            {
                b"fine_labels": fine[part],
                b"coarse_labels": [0] * len(fine[part]),
                b"data": rows[part],
            },
        )
    _pickle(
        folder / "meta",
        {b"fine_label_names": [c.encode() for c in classes], b"coarse_label_names": [b"all"]},
    )
    images, labels = rows.reshape(-1, 3, 32, 32), np.array(fine)
    return Written(
        folder, images[:n_train], labels[:n_train], images[n_train:], labels[n_train:], classes
    )


def make_tar_gz(folder: Path, archive: Path) -> Path:
    """folder packed into a .tar.gz, under its own name (as the official archives are)."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def write_stl10(
    root: Path, n_train: int = 4, n_test: int = 3, n_unlabeled: int = 2, seed: int = 0
) -> Written:
    """stl10_binary/ with *_X.bin (column-major), *_y.bin (1..10) and class_names.txt."""
    rng = np.random.default_rng(seed)
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled)):
        images = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        (folder / f"{split}_X.bin").write_bytes(images.transpose(0, 1, 3, 2).tobytes())
        out[split] = images
        if split != "unlabeled":
            labels = rng.integers(0, 10, n)
            (folder / f"{split}_y.bin").write_bytes((labels + 1).astype(np.uint8).tobytes())
            out[f"{split}_y"] = labels
    (folder / "class_names.txt").write_text("\n".join(STL10_CLASSES) + "\n")
    return Written(
        folder,
        out["train"],
        out["train_y"],
        out["test"],
        out["test_y"],
        STL10_CLASSES,
        out["unlabeled"],
    )


def encode_image(image: np.ndarray, fmt: str) -> bytes:
    buffer = BytesIO()
    Image.fromarray(image).save(buffer, format=fmt)
    return buffer.getvalue()


def write_imagefolder(
    root: Path,
    classes: tuple[str, ...] = ("cat", "dog", "emu"),
    per_class: dict[str, int] | None = None,
    split: bool = True,
    shape: tuple[int, ...] = (5, 6, 3),
    fmt: str = "PNG",
    top: str = "",
    as_zip: bool = False,
    seed: int = 0,
) -> Written:
    """An ImageFolder of random images: root[/top]/{train,test}/<class>/NNNN.png, or
    root[/top]/<class>/NNNN.png when not split; as_zip packs the same names into root.zip."""
    rng = np.random.default_rng(seed)
    per_class = per_class or {"train": 3, "test": 2}
    files: dict[str, bytes] = {}
    arrays = {}
    for part, count in per_class.items():
        images, labels = [], []
        for label, name in enumerate(classes):
            for i in range(count):
                image = rng.integers(0, 256, shape, dtype=np.uint8)
                rel = "/".join(
                    p for p in (top, part if split else "", name, f"{i:04d}.{fmt.lower()}") if p
                )
                files[rel] = encode_image(image, fmt)
                images.append(image)
                labels.append(label)
        stacked = np.stack(images)
        arrays[part] = (
            stacked[:, None] if stacked.ndim == 3 else stacked.transpose(0, 3, 1, 2),
            np.array(labels),
        )
    if as_zip:
        path = root.with_suffix(".zip")
        with zipfile.ZipFile(path, "w") as archive:
            for rel, data in files.items():
                archive.writestr(rel, data)
    else:
        path = root
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
    train, test = [*arrays.values(), (None, None)][:2]  # the first part, then the second
    return Written(path, *train, *test, list(classes))
