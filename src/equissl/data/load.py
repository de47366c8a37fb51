"""load_data: read the configured dataset (through the cache), then subset, convert and resize."""

from __future__ import annotations

from collections.abc import Callable

from equissl.config import DataConfig
from equissl.data.cifar import read_cifar
from equissl.data.convert import resize, to_channels
from equissl.data.digits import read_digits
from equissl.data.idx import read_idx_set
from equissl.data.imagefolder import read_imagefolder
from equissl.data.sources import source_path
from equissl.data.stl10 import read_stl10
from equissl.data.subset import balanced_subset
from equissl.data.svhn import read_svhn
from equissl.data.tinyimagenet import read_tinyimagenet
from equissl.data.types import DataSplits, ImageSet
from equissl.errors import DataError
from equissl.warn import warn

READERS: dict[str, Callable[[DataConfig], DataSplits]] = {
    "digits": lambda cfg: read_digits(),
    "cifar10": read_cifar,
    "cifar100": read_cifar,
    "stl10": read_stl10,
    "imagefolder": read_imagefolder,
    "mnist": lambda cfg: read_idx_set(source_path(cfg), "mnist"),
    "fashionmnist": lambda cfg: read_idx_set(source_path(cfg), "fashionmnist"),
    "kmnist": lambda cfg: read_idx_set(source_path(cfg), "kmnist"),
    "svhn": lambda cfg: read_svhn(source_path(cfg)),
    "tinyimagenet": lambda cfg: read_tinyimagenet(source_path(cfg), cfg.cache_dir),
}

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


def _prepare(part: ImageSet, limit: int | None, channels: int, size: int) -> ImageSet:
    images, labels = part.images, part.labels
    if limit is not None and limit < len(labels):
        keep = balanced_subset(labels, limit)
        images, labels = images[keep], labels[keep]
    if channels == 1:  # reduce before resizing: less to interpolate
        images = to_channels(images, 1)
    if size > 0:
        images = resize(images, size)
    images = to_channels(images, channels)
    return ImageSet(images, labels, part.classes)


def load_data(cfg: DataConfig, config_key: str = "data") -> DataSplits:
    """The dataset named by cfg.name: uint8 (N, C, H, W) splits with cfg.channels channels,
    resized to cfg.size (when > 0), the labelled splits cut to class-balanced cfg.limit and
    cfg.test_limit subsets (seed 0; a limit above a split's size warns and keeps it all). The
    unlabeled split is not cut. config_key: where cfg sits in the config, for the warnings."""
    if cfg.name not in READERS:
        raise DataError(f"unknown dataset '{cfg.name}'; choose one of {', '.join(READERS)}")
    if cfg.labels == "coarse" and cfg.name != "cifar100":
        raise DataError(f"data.labels=coarse needs data.name=cifar100, not {cfg.name}")
    if cfg.unlabeled and cfg.name != "stl10":
        raise DataError(f"data.unlabeled=true needs data.name=stl10, not {cfg.name}")
    raw = READERS[cfg.name](cfg)
    _warn_above(f"{config_key}.limit", cfg.limit, raw.train, "training")
    _warn_above(f"{config_key}.test_limit", cfg.test_limit, raw.test, "test")
    unlabeled = None
    if raw.unlabeled is not None:
        unlabeled = _prepare(raw.unlabeled, None, cfg.channels, cfg.size)
    return DataSplits(
        train=_prepare(raw.train, cfg.limit, cfg.channels, cfg.size),
        test=_prepare(raw.test, cfg.test_limit, cfg.channels, cfg.size),
        unlabeled=unlabeled,
        name=raw.name,
    )
