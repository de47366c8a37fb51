"""ImageFolder datasets: class subfolders of JPEG/PNG files, in a folder or a .zip (read directly).

Layouts, below the root or a single top-level folder inside it:
  train/<class>/..., test/<class>/... (or val/): the given split;
  <class>/...: a seeded, class-stratified 20% test split;
  images only, in no class folder: unlabelled (label -1, no test split), for pretraining.
Classes are the sorted class folder names of the training split, in label order; class folders
without images are skipped with a warning. 16-bit greyscale PNGs are scaled to 8 bits.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from equissl.data.cache import cached_read
from equissl.data.sources import corrupt_source, first_line
from equissl.data.subset import stratified_split
from equissl.data.types import DataSplits, ImageSet
from equissl.errors import DataError
from equissl.warn import warn

EXTENSIONS = (".jpg", ".jpeg", ".png")
SPLIT_NAMES = ("train", "test", "val")
TEST_FRACTION = 0.2
SPLIT_SEED = 0
CHUNK = 1000  # files per decoding task
POOL_MIN_FILES = 4000  # fewer files are decoded in this process
MAX_WORKERS = 8
GRAY_MODES = ("1", "L", "LA")
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I")  # 16-bit grey ("I": 32-bit ints, clipped to 16 bits)
DECODER_VERSION = 2  # in the cache key: bump when decoding changes (2: 16-bit PNGs scaled)
SHOWN_FOLDERS = 5  # empty class folders named in the warning
LAYOUT = (
    "expected <root>/train/<class>/<image> and <root>/test/<class>/<image>, "
    "or <root>/<class>/<image>"
)

_zip: zipfile.ZipFile | None = None  # the open archive of this (worker) process


def _is_hidden(name: str) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in name.split("/"))


def _is_image(name: str) -> bool:
    return name.lower().endswith(EXTENSIONS) and not _is_hidden(name)


def list_entries(source: Path) -> tuple[list[str], list[str]]:
    """Sorted posix paths of the image files and of the (non-hidden) folders, relative to the
    folder or inside the zip (a zip's folders: its folder entries and its members' parents)."""
    if source.is_dir():
        names, folders = [], []
        for root, dirs, files in os.walk(source):
            rel = Path(root).relative_to(source)
            names += [(rel / file).as_posix() for file in files]
            folders += [(rel / folder).as_posix() for folder in dirs]
    else:
        try:
            with zipfile.ZipFile(source) as archive:
                members = archive.namelist()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise corrupt_source(source, exc, "re-download or re-create the zip") from None
        names = [n for n in members if not n.endswith("/")]
        folders = {n.rstrip("/") for n in members if n.endswith("/")}
        folders |= {n.rpartition("/")[0] for n in names}
        for folder in sorted(folders, key=len, reverse=True):  # few: each folder's ancestors
            while "/" in folder:
                folder = folder.rpartition("/")[0]
                folders.add(folder)
    images = sorted(n for n in names if _is_image(n))
    return images, sorted(f for f in folders if f and not _is_hidden(f))


def list_images(source: Path) -> list[str]:
    """Sorted posix paths of the image files, relative to the folder or inside the zip."""
    return list_entries(source)[0]


def _common_root(names: list[str]) -> int:
    """How many leading folders all images share (stopping before a split folder)."""
    parents = [n.split("/")[:-1] for n in names]
    depth = 0
    for level in zip(*parents, strict=False):
        if len(set(level)) > 1 or level[0] in SPLIT_NAMES:
            break
        depth += 1
    return depth


class FileSplit(NamedTuple):
    """Image files (zip member or relative names) of each split, their labels, the classes."""

    train_files: list[str]
    train_labels: list[int]
    test_files: list[str]
    test_labels: list[int]
    classes: list[str]


def _warn_empty_classes(
    names: list[str], folders: list[str], skip: int, splits: tuple[str, ...], source: Path
) -> None:
    """Warn (one line) about class folders, at the class level of the layout, without images;
    splits: the split folders in use, or () when there are none."""
    prefix = names[0].split("/")[:skip]
    depth = skip + (2 if splits else 1)
    used = {tuple(n.split("/")[:depth]) for n in names if n.count("/") >= depth}
    empty = []
    for folder in folders:
        parts = folder.split("/")
        at_class_level = len(parts) == depth and parts[:skip] == prefix
        if at_class_level and (not splits or parts[skip] in splits) and tuple(parts) not in used:
            empty.append(folder)
    if empty:
        more = f" and {len(empty) - SHOWN_FOLDERS} more" if len(empty) > SHOWN_FOLDERS else ""
        warn(
            f"ignoring {len(empty)} class folder(s) without JPEG or PNG images in {source}: "
            f"{', '.join(empty[:SHOWN_FOLDERS])}{more}; add images or remove the folder(s)"
        )


def split_files(names: list[str], source: Path, folders: list[str] | None = None) -> FileSplit:
    """Train and test files with labels, from the folder layout (see the module docstring);
    `folders` (as from list_entries) are checked for class folders without images. Images in
    no class folder (a flat folder, or a single folder) are unlabelled: every image is a
    training image with label -1, there is no test split and no class."""
    if not names:
        raise DataError(f"no JPEG or PNG images in {source}; {LAYOUT}")
    skip = _common_root(names)
    rel = [n.split("/")[skip:] for n in names]
    by_split: dict[str, list[int]] = {s: [] for s in SPLIT_NAMES}
    for i, parts in enumerate(rel):
        if len(parts) >= 3 and parts[0] in by_split:
            by_split[parts[0]].append(i)
    test_name = "test" if by_split["test"] else "val"
    is_split = bool(by_split["train"] or by_split["test"] or by_split["val"])
    if folders:
        splits = ("train", test_name) if is_split else ()
        _warn_empty_classes(names, folders, skip, splits, source)
    if is_split:
        if not by_split["train"] or not by_split[test_name]:
            missing = "train" if not by_split["train"] else "test (or val)"
            raise DataError(f"no {missing} images in {source}; {LAYOUT}")
        train, test = by_split["train"], by_split[test_name]
        class_of = {i: rel[i][1] for i in train + test}
    else:
        train = [i for i, parts in enumerate(rel) if len(parts) >= 2]
        if not train:  # a flat folder (or a single one): unlabelled images, for pretraining
            return FileSplit(list(names), [-1] * len(names), [], [], [])
        class_of = {i: rel[i][0] for i in train}
        test = []
    classes = sorted({class_of[i] for i in train})
    index = {c: k for k, c in enumerate(classes)}
    unknown = sorted({class_of[i] for i in test} - index.keys())
    if unknown:
        raise DataError(
            f"test class folder '{unknown[0]}' in {source} has no train folder; "
            f"train classes: {', '.join(classes)}"
        )
    if not test:  # no split folders: hold out 20% of each class
        labels = np.array([index[class_of[i]] for i in train])
        train_idx, test_idx = stratified_split(labels, TEST_FRACTION, SPLIT_SEED)
        train, test = [train[k] for k in train_idx], [train[k] for k in test_idx]
    return FileSplit(
        [names[i] for i in train],
        [index[class_of[i]] for i in train],
        [names[i] for i in test],
        [index[class_of[i]] for i in test],
        classes,
    )


def _open(source: Path) -> None:
    """Pool initializer: each process opens the zip once (handles cannot be shared)."""
    global _zip
    _zip = zipfile.ZipFile(source) if source.is_file() else None


def _close() -> None:
    global _zip
    if _zip is not None:
        _zip.close()
    _zip = None


def to_array(image: Image.Image) -> np.ndarray:
    """(H, W) grey or (H, W, 3) RGB uint8 of a PIL image; 16-bit grey (WIDE_MODES, mode "I"
    clipped to 0..65535) becomes round(value * 255 / 65535)."""
    if image.mode in WIDE_MODES:
        wide = np.asarray(image).astype(np.int64).clip(0, 65535)
        return ((wide * 255 + 32767) // 65535).astype(np.uint8)  # value / 257 is never a tie
    return np.asarray(image.convert("L" if image.mode in GRAY_MODES else "RGB"))


def read_member(source: Path, name: str) -> bytes:
    """The bytes of image `name` of a folder or zip (the zip this process opened with _open, or
    opened here); DataError when it cannot be read."""
    try:
        if source.is_dir():
            return (source / name).read_bytes()
        if _zip is not None:
            return _zip.read(name)
        with zipfile.ZipFile(source) as archive:
            return archive.read(name)
    except Exception as exc:  # noqa: BLE001 - zip CRC, zlib and I/O errors
        raise corrupt_source(
            f"{source}:{name}", exc, "re-download or re-create the dataset"
        ) from None


def decode_image(data: bytes, where: str) -> np.ndarray:
    """The (H, W) grey or (H, W, 3) RGB uint8 array of encoded image bytes (`where` names the
    file in the error); DataError when they do not decode."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return to_array(image)
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad files
        unknown = isinstance(exc, UnidentifiedImageError)  # its message shows a BytesIO object
        why = "not a JPEG or PNG image" if unknown else first_line(exc)
        raise DataError(
            f"cannot decode image {where} ({why}); replace or delete the file"
        ) from None


def _decode_one(source: Path, name: str) -> np.ndarray:
    return decode_image(read_member(source, name), f"{source}/{name}")


def _decode_chunk(task: tuple[Path, list[str]]) -> list[np.ndarray]:
    source, names = task
    return [_decode_one(source, name) for name in names]


def decode_files(source: Path, names: list[str]) -> list[np.ndarray]:
    """Decoded (H, W) grey or (H, W, 3) RGB arrays, in order; a process pool for many files."""
    tasks = [(source, names[i : i + CHUNK]) for i in range(0, len(names), CHUNK)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = min(MAX_WORKERS, cores or 1, len(tasks))
    can_fork = "fork" in multiprocessing.get_all_start_methods()
    if len(names) >= POOL_MIN_FILES and workers > 1 and can_fork:
        context = multiprocessing.get_context("fork")  # workers need only numpy and Pillow
        with context.Pool(workers, initializer=_open, initargs=(source,)) as pool:
            chunks = pool.map(_decode_chunk, tasks, chunksize=1)
    else:
        _open(source)
        try:
            chunks = [_decode_chunk(task) for task in tasks]
        finally:
            _close()
    return [array for chunk in chunks for array in chunk]


def stack_images(
    arrays: list[np.ndarray], names: list[str], source: Path, size: int | None
) -> np.ndarray:
    """(N, C, H, W) uint8; grey is promoted to RGB when mixed with colour, and images whose size
    differs are resized to size x size when a size is given (DataError otherwise)."""
    shapes = {a.shape[:2] for a in arrays}
    if len(shapes) > 1:
        if not size:
            first = arrays[0].shape[:2]
            odd = next(i for i, a in enumerate(arrays) if a.shape[:2] != first)
            raise DataError(
                f"images in {source} differ in size ({names[0]} is {first[1]}x{first[0]}, "
                f"{names[odd]} is {arrays[odd].shape[1]}x{arrays[odd].shape[0]}); "
                f"set data.size=N to resize them all to NxN"
            )
        arrays = [
            a
            if a.shape[:2] == (size, size)
            else np.asarray(Image.fromarray(a).resize((size, size), Image.Resampling.BILINEAR))
            for a in arrays
        ]
    if len({a.ndim for a in arrays}) > 1:
        arrays = [np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
    stacked = np.stack(arrays)
    if stacked.ndim == 3:
        return np.ascontiguousarray(stacked[:, None])
    return np.ascontiguousarray(stacked.transpose(0, 3, 1, 2))


def _read(source: Path, size: int | None, split: FileSplit) -> DataSplits:
    files = split.train_files + split.test_files
    images = torch.from_numpy(stack_images(decode_files(source, files), files, source, size))
    labels = torch.tensor(split.train_labels + split.test_labels, dtype=torch.int64)
    n, classes = len(split.train_files), split.classes
    return DataSplits(
        ImageSet(images[:n], labels[:n], classes),
        ImageSet(images[n:], labels[n:], classes),
        None,
        "imagefolder",
    )


def read_imagefolder(
    source: Path, *, size: int | None = None, cache_dir: str | Path | None = None
) -> DataSplits:
    """An ImageFolder dataset from `source` (folder or .zip), through the decode cache in
    `cache_dir`; images that differ in size are resized to size x size (see stack_images)."""
    if source.is_file() and source.suffix.lower() != ".zip":
        raise DataError(f"{source} is neither a folder nor a .zip; point data.path at either")
    if source.is_file() and not zipfile.is_zipfile(source):
        raise corrupt_source(source, ValueError("not a zip archive"), "re-download or re-create it")
    if source.is_dir():  # the key needs every file's stat; a zip's own stat suffices
        entries = list_entries(source)
        files = [source / n for n in entries[0]]
    else:
        entries, files = None, [source]

    def read() -> DataSplits:
        names, folders = entries if entries is not None else list_entries(source)
        return _read(source, size, split_files(names, source, folders))

    options = {"size": size or 0, "decoder": DECODER_VERSION}  # 0: the key of earlier caches
    return cached_read(cache_dir, "imagefolder", files, options, read)
