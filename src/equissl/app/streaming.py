"""`data.stream`: whether a pretraining run holds its decoded set in memory (resident, the
default when it fits) or streams it from shards in DataLoader workers, and the set-up of a
streamed run. The choice is said in one line."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig
from PIL import Image

from equissl.app.train import PretrainModule, StreamSource
from equissl.data.cache import default_cache_dir
from equissl.data.imagefolder import list_images, read_member
from equissl.data.shards import is_shard_folder, prepare_shards, read_manifest
from equissl.data.sources import source_path
from equissl.data.stream import stream_stats
from equissl.errors import ConfigError, DataError
from equissl.methods import Method, build_method
from equissl.methods.hostcrops import HostCropLoss
from equissl.warn import warn

RAM_FRACTION = 0.5  # auto streams a set whose decoded size is above this part of free memory
GB = 1 << 30


def available_memory() -> int:
    """Bytes of memory free now (os.sysconf; very large where the system does not say)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def decoded_bytes(source: Path, channels: int, size: int | None, limit: int | None) -> int:
    """The decoded size of an ImageFolder: images x channels x side^2, the side `size` or, when
    unset, the first image's (its header only is read)."""
    names = list_images(source)
    if not names:
        return 0
    if not size or size <= 0:
        data = read_member(source, names[0])
        try:
            with Image.open(io.BytesIO(data)) as image:
                size = max(image.size)
        except Exception:  # noqa: BLE001 - the resident reader reports a bad image itself
            size = 1
    n = len(names) if limit is None else min(limit, len(names))
    return n * channels * size * size


def stream_size(cfg: DictConfig) -> int:
    """The side of a streamed run's images: data.size, else augment.size."""
    size = cfg.data.size or cfg.augment.size
    if not size or size <= 0:
        raise ConfigError(
            "streaming cuts every image to a fixed size: set data.size=N (or augment.size=N)"
        )
    return size


def shard_cache(source: Path, cache_dir: str | None) -> Path:
    """Where the shards of an ImageFolder source are prepared for streaming: the cache folder,
    keyed by the source's path, size and time."""
    stat = source.stat()
    key = hashlib.blake2b(
        f"{source}:{stat.st_size}:{stat.st_mtime_ns}".encode(), digest_size=8
    ).hexdigest()
    folder = default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
    return folder / f"shards-{key}"


def stream_source(cfg: DictConfig, say: Callable[[str], None] = print) -> Path | None:
    """The shard folder a run streams from, or None for a resident run; for an imagefolder
    source, `say`s the choice in one line. A source that is not yet shards is prepared into the
    cache (resumable)."""
    d = cfg.data
    if d.name != "imagefolder":
        if d.stream == "true":
            raise ConfigError(
                f"data.stream=true reads an ImageFolder or a shard folder, not data.name={d.name}"
            )
        return None
    path = source_path(d.path, d.name)
    shards = is_shard_folder(path)
    if d.stream == "false":
        say(f"data: resident, decoded into memory (data.stream=false): {path}")
        return None
    if d.stream == "auto" and not shards:
        need, free = decoded_bytes(path, d.channels, d.size, d.limit), available_memory()
        if need <= RAM_FRACTION * free:
            say(
                f"data: resident, decoded into memory (data.stream=auto: about {need / GB:.2f} "
                f"GB, under half the {free / GB:.1f} GB free)"
            )
            return None
        why = f"about {need / GB:.1f} GB decoded, over half the {free / GB:.1f} GB free"
    else:
        why = "a shard folder" if shards else "asked"
    if d.limit is not None:
        warn(f"data.limit={d.limit} does not apply to a streamed set: every shard is read")
    folder = path if shards else shard_cache(path, d.cache_dir)
    if not shards:
        prepare_shards(path, folder)
    say(f"data: streaming from {folder} with {d.workers} workers (data.stream={d.stream}: {why})")
    return folder


def streamed_run(cfg: DictConfig, shards: Path) -> tuple[Method, PretrainModule]:
    """The method and Lightning module of a run streaming from `shards`: the method's
    augmentations read host crops, normalised by statistics of the first training images."""
    size, channels = stream_size(cfg), cfg.data.channels
    manifest = read_manifest(shards)
    if manifest["train"]["count"] < cfg.optim.batch_size:
        raise DataError(
            f"optim.batch_size={cfg.optim.batch_size} is larger than the "
            f"{manifest['train']['count']} training images in {shards}; lower optim.batch_size"
        )
    mean, std = stream_stats(shards, size, channels)
    method = build_method(
        cfg,
        in_channels=channels,
        image_size=size,
        num_classes=max(len(manifest["classes"]), 1),
        mean=mean,
        std=std,
    )
    try:
        crop_loss = HostCropLoss(method)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    source = StreamSource(shards, crop_loss, int(cfg.data.workers), channels)
    return method, PretrainModule(cfg, method, None, None, source)
