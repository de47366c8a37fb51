"""CIFAR-10 and CIFAR-100 in the official "python version": pickled batches, from the extracted
folder, a folder holding it, or the .tar.gz archive read directly (no extraction)."""

from __future__ import annotations

import io
import pickle
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from equissl.data.cache import cached_read
from equissl.data.sources import corrupt_source
from equissl.data.types import DataSplits, ImageSet
from equissl.errors import DataError


@dataclass(frozen=True)
class CifarLayout:
    """File names and pickle keys of one CIFAR variant."""

    folder: str
    archive: str
    train: tuple[str, ...]
    test: str
    meta: str
    label_key: bytes
    names_key: bytes


LAYOUTS = {
    "cifar10": CifarLayout(
        folder="cifar-10-batches-py",
        archive="cifar-10-python.tar.gz",
        train=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test="test_batch",
        meta="batches.meta",
        label_key=b"labels",
        names_key=b"label_names",
    ),
    "cifar100": CifarLayout(
        folder="cifar-100-python",
        archive="cifar-100-python.tar.gz",
        train=("train",),
        test="test",
        meta="meta",
        label_key=b"fine_labels",
        names_key=b"fine_label_names",
    ),
}
# CIFAR-100's 20 superclasses: the same files, the other label keys.
COARSE = replace(LAYOUTS["cifar100"], label_key=b"coarse_labels", names_key=b"coarse_label_names")

# The globals the official pickles need (numpy arrays, bytes); anything else is refused.
_SAFE_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR batch")
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            module = module.replace("numpy.core", "numpy._core", 1)
        return super().find_class(module, name)


def _fix(layout: CifarLayout) -> str:
    return f"re-download {layout.archive} or re-extract it"


def _unpickle(handle: BinaryIO, where: str, layout: CifarLayout) -> dict:
    try:
        loaded = _BatchUnpickler(handle, encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - truncated pickles fail in many ways
        raise corrupt_source(where, exc, _fix(layout)) from None
    if not isinstance(loaded, dict):
        raise corrupt_source(where, TypeError("not a dict of arrays"), _fix(layout))
    return loaded


def _find_folder(path: Path, layout: CifarLayout) -> Path | None:
    for folder in (path, path / layout.folder):
        if (folder / layout.test).is_file() or (folder / layout.meta).is_file():
            return folder
    return None


def _read_folder(folder: Path, layout: CifarLayout) -> dict[str, dict]:
    batches = {}
    for name in (*layout.train, layout.test, layout.meta):
        file = folder / name
        if not file.is_file():
            raise DataError(
                f"missing {name} in {folder}; expected {layout.folder}/ with "
                f"{', '.join((*layout.train, layout.test, layout.meta))} (the python version)"
            )
        with file.open("rb") as handle:
            batches[name] = _unpickle(handle, str(file), layout)
    return batches


def _read_archive(archive: Path, layout: CifarLayout) -> dict[str, dict]:
    wanted = {*layout.train, layout.test, layout.meta}
    batches = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:  # one pass: gzip streams cannot seek back cheaply
                name = Path(member.name).name
                if member.isfile() and name in wanted and name not in batches:
                    data = tar.extractfile(member).read()
                    batches[name] = _unpickle(io.BytesIO(data), f"{archive}:{member.name}", layout)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - tar, gzip and I/O errors
        raise corrupt_source(archive, exc, f"re-download {layout.archive}") from None
    missing = sorted(wanted - batches.keys())
    if missing:
        raise DataError(
            f"missing {missing[0]} in {archive}; expected the official {layout.archive} "
            f"holding {layout.folder}/"
        )
    return batches


def _images(batch: dict, where: str, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[layout.label_key], dtype=np.int64)
        images = data.reshape(len(labels), 3, 32, 32)
    except (KeyError, TypeError, ValueError) as exc:
        raise corrupt_source(where, exc, _fix(layout)) from None
    return images, labels


def _splits(batches: dict[str, dict], layout: CifarLayout, name: str, where: Path) -> DataSplits:
    classes = [
        c.decode() if isinstance(c, bytes) else str(c)
        for c in batches[layout.meta].get(layout.names_key, [])
    ]
    if not classes:
        raise corrupt_source(where / layout.meta, KeyError(layout.names_key.decode()), _fix(layout))
    train = [_images(batches[b], str(where / b), layout) for b in layout.train]
    test_images, test_labels = _images(batches[layout.test], str(where / layout.test), layout)
    train_images = np.concatenate([images for images, _ in train])
    train_labels = np.concatenate([labels for _, labels in train])
    for labels, file in ((train_labels, layout.train[0]), (test_labels, layout.test)):
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise corrupt_source(where / file, ValueError("label out of range"), _fix(layout))
    return DataSplits(
        ImageSet(torch.from_numpy(train_images), torch.from_numpy(train_labels), classes),
        ImageSet(torch.from_numpy(test_images), torch.from_numpy(test_labels), classes),
        None,
        name,
    )


def read_cifar(
    path: Path,
    name: str = "cifar10",
    *,
    coarse: bool = False,
    cache_dir: str | Path | None = None,
) -> DataSplits:
    """CIFAR-10 or -100 (`name`) from `path` (the extracted folder, a folder holding it, or the
    archive), through the decode cache in `cache_dir`; CIFAR-100 with its 20 coarse labels when
    `coarse`."""
    coarse = coarse and name == "cifar100"
    layout = COARSE if coarse else LAYOUTS[name]
    options = {"labels": "coarse"} if coarse else {}
    folder = _find_folder(path, layout) if path.is_dir() else None
    if folder is not None:
        files = [folder / f for f in (*layout.train, layout.test, layout.meta)]
        return cached_read(
            cache_dir,
            name,
            [f for f in files if f.is_file()],
            options,
            lambda: _splits(_read_folder(folder, layout), layout, name, folder),
        )
    if path.is_dir() and (path / layout.archive).is_file():
        path = path / layout.archive
    if path.is_dir() or not path.name.endswith((".tar.gz", ".tgz", ".tar")):
        raise DataError(
            f"no {layout.folder}/ found at {path}; point data.path at the extracted folder, "
            f"the folder holding it, or {layout.archive}"
        )
    return cached_read(
        cache_dir,
        name,
        [path],
        options,
        lambda: _splits(_read_archive(path, layout), layout, name, path),
    )
