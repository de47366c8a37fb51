"""Tiny-ImageNet (tiny-imagenet-200): 200 classes of 64x64 JPEGs, from the extracted folder, a
folder holding it, or the .zip read directly.

The training images are `train/<wnid>/images/*.JPEG`; the validation images are all in
`val/images/`, labelled by `val/val_annotations.txt` (file, wnid, box), and serve as the test
split (the official test split has no labels). Labels follow the sorted wnids, as an ImageFolder
over `train/` numbers them; class names are the first name of each wnid in `words.txt`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from equissl.data.cache import cached_read
from equissl.data.imagefolder import DECODER_VERSION, decode_files, list_entries, stack_images
from equissl.data.sources import corrupt_source
from equissl.data.types import DataSplits, ImageSet
from equissl.errors import DataError

FOLDER = "tiny-imagenet-200"
ANNOTATIONS = "val/val_annotations.txt"
FIX = "re-download tiny-imagenet-200.zip"


def _root(source: Path, members: list[str]) -> str:
    """The prefix ('' or 'tiny-imagenet-200/') below which wnids.txt lies."""
    for prefix in ("", f"{FOLDER}/"):
        if f"{prefix}wnids.txt" in members:
            return prefix
    raise DataError(
        f"no wnids.txt in {source} or its {FOLDER}/; point data.path at the extracted "
        f"{FOLDER}/ folder, the folder holding it, or {FOLDER}.zip"
    )


def _texts(source: Path, root: str) -> dict[str, str]:
    """The text files the reader needs, by name below the root (words.txt may be missing)."""
    wanted = {"wnids.txt", "words.txt", ANNOTATIONS}
    texts = {}
    try:
        if source.is_dir():
            for name in wanted:
                if (source / root / name).is_file():
                    texts[name] = (source / root / name).read_text()
        else:
            with zipfile.ZipFile(source) as archive:
                members = set(archive.namelist())
                for name in wanted:
                    if root + name in members:
                        texts[name] = archive.read(root + name).decode()
    except (OSError, UnicodeDecodeError, zipfile.BadZipFile, EOFError) as exc:
        raise corrupt_source(source, exc, FIX) from None
    for name in ("wnids.txt", ANNOTATIONS):
        if name not in texts:
            raise DataError(f"missing {root}{name} in {source}; {FIX}")
    return texts


def _members(source: Path) -> list[str]:
    if source.is_dir():
        return [n for n in ("wnids.txt", f"{FOLDER}/wnids.txt") if (source / n).is_file()]
    try:
        with zipfile.ZipFile(source) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise corrupt_source(source, exc, FIX) from None


def _class_names(wnids: list[str], words: str | None) -> list[str]:
    names = {}
    for line in (words or "").splitlines():
        wnid, _, text = line.partition("\t")
        names[wnid.strip()] = text.split(",")[0].strip()
    return [names.get(w) or w for w in wnids]


def _validation(annotations: str, root: str, index: dict[str, int]) -> tuple[list[str], list[int]]:
    files, labels = [], []
    for number, line in enumerate(annotations.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            why = ValueError(f"line {number} names no known wnid: {line[:60]!r}")
            raise corrupt_source(f"{root}{ANNOTATIONS}", why, FIX)
        files.append(f"{root}val/images/{fields[0]}")
        labels.append(index[fields[1]])
    return files, labels


def read_tinyimagenet(source: Path, cache_dir: str | Path | None = None) -> DataSplits:
    """Train (100,000) and validation-as-test (10,000) splits, uint8 (N, 3, 64, 64), through the
    decode cache."""
    if source.is_file() and not zipfile.is_zipfile(source):
        raise corrupt_source(source, ValueError("not a zip archive"), FIX)
    root = _root(source, _members(source))
    names = list_entries(source)[0]
    sources = [source] if source.is_file() else [source / n for n in names]

    def read() -> DataSplits:
        texts = _texts(source, root)
        wnids = sorted({w.strip() for w in texts["wnids.txt"].split() if w.strip()})
        index = {w: i for i, w in enumerate(wnids)}
        train = [n for n in names if n.startswith(f"{root}train/") and "/images/" in n]
        train_labels = [index.get(n[len(root) :].split("/")[1], -1) for n in train]
        if -1 in train_labels:
            stray = train[train_labels.index(-1)]
            raise corrupt_source(source, ValueError(f"{stray} is in no class of wnids.txt"), FIX)
        test, test_labels = _validation(texts[ANNOTATIONS], root, index)
        present = set(names)
        missing = next((f for f in test if f not in present), None)
        if missing is not None:
            raise DataError(f"missing {missing} in {source}, listed in {root}{ANNOTATIONS}; {FIX}")
        files = train + test
        images = torch.from_numpy(stack_images(decode_files(source, files), files, source, 0))
        labels = torch.tensor(train_labels + test_labels, dtype=torch.int64)
        classes = _class_names(wnids, texts.get("words.txt"))
        n = len(train)
        return DataSplits(
            ImageSet(images[:n], labels[:n], classes),
            ImageSet(images[n:], labels[n:], classes),
            None,
            "tinyimagenet",
        )

    return cached_read(cache_dir, "tinyimagenet", sources, {"decoder": DECODER_VERSION}, read)
