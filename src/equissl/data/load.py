"""Load a dataset by name (through the cache), then subset, convert and resize it.

`load_image_dataset` takes plain arguments; `load_data` reads them from the configuration's `data`
section (a DataConfig, or any object with its fields): the one place data/ reads the config.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, Protocol

import torch

from equissl.data.cifar import read_cifar
from equissl.data.convert import resize, to_channels
from equissl.data.digits import read_digits
from equissl.data.idx import read_idx_set
from equissl.data.imagefolder import read_imagefolder
from equissl.data.shards import is_shard_folder, read_shards
from equissl.data.sources import source_path
from equissl.data.stl10 import read_stl10
from equissl.data.subset import balanced_subset
from equissl.data.svhn import read_svhn
from equissl.data.tinyimagenet import read_tinyimagenet
from equissl.data.types import DataSplits, ImageSet
from equissl.errors import DataError
from equissl.warn import warn


class Source(NamedTuple):
    """What a reader is given: the resolved source path (None for the built-in digits) and the
    options that change what it reads."""

    path: Path | None
    cache_dir: str | Path | None = None
    coarse: bool = False  # cifar100: the 20 superclasses
    unlabeled: bool = False  # stl10: the unlabeled split too
    size: int | None = None  # imagefolder: the side images of differing sizes are resized to


# The dataset registry: the valid values of `data.name`, in this order.
READERS: dict[str, Callable[[Source], DataSplits]] = {
    "digits": lambda s: read_digits(),
    "cifar10": lambda s: read_cifar(s.path, "cifar10", cache_dir=s.cache_dir),
    "cifar100": lambda s: read_cifar(s.path, "cifar100", coarse=s.coarse, cache_dir=s.cache_dir),
    "stl10": lambda s: read_stl10(s.path, unlabeled=s.unlabeled),
    "imagefolder": lambda s: (
        read_shards(s.path, size=s.size, cache_dir=s.cache_dir)
        if is_shard_folder(s.path)
        else read_imagefolder(s.path, size=s.size, cache_dir=s.cache_dir)
    ),
    "mnist": lambda s: read_idx_set(s.path, "mnist"),
    "fashionmnist": lambda s: read_idx_set(s.path, "fashionmnist"),
    "kmnist": lambda s: read_idx_set(s.path, "kmnist"),
    "svhn": lambda s: read_svhn(s.path),
    "tinyimagenet": lambda s: read_tinyimagenet(s.path, s.cache_dir),
}
PATHLESS = ("digits",)  # readers that need no source path

# Image sides of the readers with a fixed source size (imagefolder sources have none).
NATIVE_SIZES = {
    "digits": 8,
    "cifar10": 32,
    "cifar100": 32,
    "stl10": 96,
    "mnist": 28,
    "fashionmnist": 28,
    "kmnist": 28,
    "svhn": 32,
    "tinyimagenet": 64,
}


def _warn_above(key: str, limit: int | None, part: ImageSet, split: str) -> None:
    n = len(part.labels)
    if limit is not None and limit > n:
        warn(f"{key}={limit} is above the {n} images of the {split} split; using all {n}")


def _prepare(part: ImageSet, limit: int | None, channels: int, size: int | None) -> ImageSet:
    images, labels = part.images, part.labels
    if limit is not None and limit < len(labels):
        if bool((labels < 0).all()):  # unlabelled: a seeded random subset, in file order
            keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
            keep = keep[:limit].sort().values
        else:
            keep = balanced_subset(labels, limit)
        images, labels = images[keep], labels[keep]
    if channels == 1:  # reduce before resizing: less to interpolate
        images = to_channels(images, 1)
    if size:
        images = resize(images, size)
    images = to_channels(images, channels)
    return ImageSet(images, labels, part.classes)


def load_image_dataset(
    name: str = "digits",
    path: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    labels: str = "fine",
    unlabeled: bool = False,
    channels: int = 3,
    size: int | None = None,
    limit: int | None = None,
    test_limit: int | None = None,
    config_key: str = "data",
) -> DataSplits:
    """The dataset `name` (one of READERS) from `path`: uint8 (N, C, H, W) splits with `channels`
    channels, resized to `size` (None: as read), the labelled splits cut to class-balanced `limit`
    and `test_limit` subsets (seed 0; a limit above a split's size warns and keeps it all). The
    unlabeled split (stl10 with `unlabeled`) is not cut. `labels`: cifar100's fine or coarse
    labels; `cache_dir`: the decode cache (None: default_cache_dir()). config_key: where these
    settings sit in the config, for the warnings."""
    if name not in READERS:
        raise DataError(f"unknown dataset '{name}'; choose one of {', '.join(READERS)}")
    if labels == "coarse" and name != "cifar100":
        raise DataError(f"data.labels=coarse needs data.name=cifar100, not {name}")
    if unlabeled and name != "stl10":
        raise DataError(f"data.unlabeled=true needs data.name=stl10, not {name}")
    source = None if name in PATHLESS else source_path(path, name)
    raw = READERS[name](Source(source, cache_dir, labels == "coarse", unlabeled, size))
    _warn_above(f"{config_key}.limit", limit, raw.train, "training")
    if raw.train.classes:  # unlabelled data has no test split to cut
        _warn_above(f"{config_key}.test_limit", test_limit, raw.test, "test")
    extra = None
    if raw.unlabeled is not None:
        extra = _prepare(raw.unlabeled, None, channels, size)
    return DataSplits(
        train=_prepare(raw.train, limit, channels, size),
        test=_prepare(raw.test, test_limit, channels, size),
        unlabeled=extra,
        name=raw.name,
    )


class DataSettings(Protocol):
    """The fields of the configuration's `data` section (equissl.app.config.DataConfig) read here."""

    name: str
    path: str | None
    cache_dir: str | None
    labels: str
    unlabeled: bool
    channels: int
    size: int | None
    limit: int | None
    test_limit: int | None


def load_data(cfg: DataSettings, config_key: str = "data") -> DataSplits:
    """`load_image_dataset` with the settings of `cfg` (a DataConfig, or the config's `data` node);
    config_key: where cfg sits in the config, for the warnings."""
    return load_image_dataset(
        cfg.name,
        cfg.path,
        cache_dir=cfg.cache_dir,
        labels=cfg.labels,
        unlabeled=cfg.unlabeled,
        channels=cfg.channels,
        size=cfg.size,
        limit=cfg.limit,
        test_limit=cfg.test_limit,
        config_key=config_key,
    )
