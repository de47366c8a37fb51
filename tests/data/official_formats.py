"""Writers of tiny datasets in the official file formats, for the reader tests."""

from __future__ import annotations

import gzip
import pickle
import struct
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
    coarse = [label // 5 for label in fine]  # tests read the superclass as fine // 5
    for name, part in (("train", slice(0, n_train)), ("test", slice(n_train, None))):
        _pickle(
            folder / name,
            {b"fine_labels": fine[part], b"coarse_labels": coarse[part], b"data": rows[part]},
        )
    _pickle(
        folder / "meta",
        {
            b"fine_label_names": [c.encode() for c in classes],
            b"coarse_label_names": [f"super_{i:02d}".encode() for i in range(20)],
        },
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


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of a uint8 array: 0, 0, type 0x08, ndim, big-endian uint32 dims, values."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_mnist(
    root: Path, folder: str = "MNIST/raw", gz: bool = True, n_train: int = 5, n_test: int = 3
) -> Written:
    """The four MNIST-family IDX files (gzip or raw) in root/folder (torchvision's layout)."""
    rng = np.random.default_rng(3)
    out = root / folder
    out.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        for kind, array, dims in (("images", images, 3), ("labels", labels, 1)):
            data = idx_bytes(array)
            name = f"{prefix}-{kind}-idx{dims}-ubyte"
            if gz:
                (out / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (out / name).write_bytes(data)
        arrays[split] = (images[:, None], labels.astype(np.int64))
    return Written(out, *arrays["train"], *arrays["test"], [str(d) for d in range(10)])


def write_svhn(root: Path, n_train: int = 5, n_test: int = 4) -> Written:
    """train_32x32.mat and test_32x32.mat (MATLAB v5): X (32, 32, 3, N) uint8, y (N, 1) with
    10 for the digit 0; the expected arrays are (N, 3, 32, 32) with labels 0-9."""
    from scipy.io import savemat

    rng = np.random.default_rng(4)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        digits = np.arange(n) % 10  # every run holds a 0, stored as 10
        stored = np.where(digits == 0, 10, digits).astype(np.uint8)[:, None]
        savemat(root / f"{split}_32x32.mat", {"X": images.transpose(2, 3, 1, 0), "y": stored})
        arrays[split] = (images, digits.astype(np.int64))
    return Written(root, *arrays["train"], *arrays["test"], [str(d) for d in range(10)])


def decode(data: bytes) -> np.ndarray:
    """(C, H, W) RGB of encoded image bytes, as Pillow decodes them (JPEG is lossy)."""
    with Image.open(BytesIO(data)) as image:
        return np.asarray(image.convert("RGB")).transpose(2, 0, 1)


def write_tinyimagenet(
    root: Path, per_class: int = 2, n_val: int = 5, as_zip: bool = False
) -> Written:
    """tiny-imagenet-200/ (or tiny-imagenet-200.zip) with wnids.txt in file order (unsorted),
    words.txt, train/<wnid>/images/<wnid>_<i>.JPEG with a boxes file, val/images/val_<i>.JPEG
    labelled by val/val_annotations.txt (tab-separated: file, wnid, box) and unlabelled
    test/images/. Expected labels follow the sorted wnids."""
    rng = np.random.default_rng(5)
    wnids = ["n09999999", "n01443537", "n02099601"]  # unsorted, as the official file is
    names = {"n09999999": "zebra crossing, crosswalk", "n01443537": "goldfish, Carassius"}
    ordered = sorted(wnids)
    files: dict[str, bytes] = {
        "wnids.txt": "".join(f"{w}\n" for w in wnids).encode(),
        "words.txt": "".join(f"{w}\t{n}\n" for w, n in names.items()).encode(),
    }
    train_images, train_labels = [], []
    for wnid in wnids:
        boxes = []
        for i in range(per_class):
            data = encode_image(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "JPEG")
            files[f"train/{wnid}/images/{wnid}_{i}.JPEG"] = data
            boxes.append(f"{wnid}_{i}.JPEG\t0\t0\t63\t63\n")
        files[f"train/{wnid}/{wnid}_boxes.txt"] = "".join(boxes).encode()
    for name in sorted(n for n in files if n.endswith(".JPEG")):  # the reader's sorted order
        train_images.append(decode(files[name]))
        train_labels.append(ordered.index(name.split("/")[1]))
    val_images, val_labels, lines = [], [], []
    for i in range(n_val):
        wnid = wnids[i % len(wnids)]
        data = encode_image(rng.integers(0, 256, (64, 64), dtype=np.uint8), "JPEG")  # grey
        files[f"val/images/val_{i}.JPEG"] = data
        lines.append(f"val_{i}.JPEG\t{wnid}\t1\t2\t40\t50\n")
        val_images.append(decode(data))
        val_labels.append(ordered.index(wnid))
    files["val/val_annotations.txt"] = "".join(lines).encode()
    files["test/images/test_0.JPEG"] = encode_image(np.zeros((64, 64, 3), np.uint8), "JPEG")
    top = "tiny-imagenet-200"
    if as_zip:
        path = root / f"{top}.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for rel, data in files.items():
                archive.writestr(f"{top}/{rel}", data)
    else:
        path = root / top
        for rel, data in files.items():
            (path / rel).parent.mkdir(parents=True, exist_ok=True)
            (path / rel).write_bytes(data)
    classes = [names.get(w, w).split(",")[0] for w in ordered]
    return Written(
        path,
        np.stack(train_images),
        np.array(train_labels),
        np.stack(val_images),
        np.array(val_labels),
        classes,
    )
