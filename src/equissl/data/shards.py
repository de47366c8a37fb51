"""Shards: an ImageFolder (folder or zip) written as webdataset tar files, for sets larger than
memory.

`prepare_shards` writes `<out>/train-000000.tar ...` (and `test-*.tar` when the source has a test
split) of `shard_size` samples each, every sample a `<index>.jpg` (or `.png`: the source's bytes,
not re-encoded) and its label as `<index>.cls`; the samples are in a seeded random order, so every
shard is a random subset of the set and a batch read from one shard is a random batch. Each shard
is checked (every image decodes) and written whole (temporary file, rename), then marked done by a
small `<shard>.json`; a rerun skips the shards already done, and `manifest.json` (counts, classes)
is written last. `read_manifest` and `shard_samples` read them back; `read_shards` decodes a shard
folder into memory like any other reader (the resident path).
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from equissl.data import imagefolder
from equissl.data.cache import cached_read
from equissl.data.imagefolder import decode_image, list_entries, read_member, split_files
from equissl.data.sources import corrupt_source
from equissl.data.types import DataSplits, ImageSet
from equissl.errors import DataError
from equissl.reports.atomic import write_bytes_atomic, write_text_atomic

MANIFEST = "manifest.json"
FORMAT = "equissl-shards"
VERSION = 1
SHARD_SIZE = 1000
ORDER_SEED = 0  # the seeded order samples are written in
SPLITS = ("train", "test")


def is_shard_folder(path: str | Path | None) -> bool:
    """Whether `path` is a folder written by `prepare_shards` (it holds manifest.json)."""
    return path is not None and (Path(path).expanduser() / MANIFEST).is_file()


class Sample(NamedTuple):
    """One prepared sample: its index in the prepared order, source file and label."""

    index: int
    name: str
    label: int


def _ext(name: str) -> str:
    return "png" if name.lower().endswith(".png") else "jpg"


def _shard_key(samples: list[Sample]) -> str:
    """What a shard holds, as a short hash: a done marker counts only for the same samples."""
    text = "\n".join(f"{s.index}\t{s.name}\t{s.label}" for s in samples)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _write_shard(task: tuple[Path, Path, str, list[Sample]]) -> tuple[str, int]:
    """Write one shard whole (every image decoded once as a check), then its done marker."""
    import webdataset as wds

    source, out, name, samples = task
    marker = out / f"{name}.json"
    key = _shard_key(samples)
    if marker.is_file():
        try:
            if json.loads(marker.read_text()).get("key") == key and (out / name).is_file():
                return name, len(samples)
        except (OSError, ValueError):
            pass  # a damaged marker: write the shard again
    buffer = io.BytesIO()
    with wds.TarWriter(buffer, encoder=False, mtime=0) as writer:
        for s in samples:
            data = read_member(source, s.name)
            decode_image(data, f"{source}/{s.name}")  # a corrupt image stops here, not in training
            writer.write({"__key__": f"{s.index:06d}", _ext(s.name): data, "cls": b"%d" % s.label})
    write_bytes_atomic(out / name, buffer.getvalue())
    write_text_atomic(marker, json.dumps({"key": key, "count": len(samples)}))
    return name, len(samples)


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def prepare_shards(
    source: str | Path,
    out: str | Path,
    *,
    shard_size: int = SHARD_SIZE,
    workers: int = 0,
) -> dict[str, Any]:
    """Write the ImageFolder `source` (folder or zip, the layouts of equissl.data.imagefolder)
    as shards of `shard_size` samples into `out`, `workers` processes in parallel (0: one per
    core); resumable (finished shards are skipped). Returns the manifest."""
    source, out = Path(source).expanduser().resolve(), Path(out).expanduser()
    if not source.exists():
        raise DataError(f"source not found: {source}; pass src=FOLDER or src=FILE.zip")
    if shard_size < 1:
        raise DataError(f"shard_size must be at least 1, got {shard_size}")
    if source.is_file() and not imagefolder.zipfile.is_zipfile(source):
        raise corrupt_source(source, ValueError("not a zip archive"), "re-download or re-create it")
    names, folders = list_entries(source)
    split = split_files(names, source, folders)
    rng = np.random.default_rng(ORDER_SEED)
    tasks, manifest = [], {"format": FORMAT, "version": VERSION, "classes": split.classes}
    index = 0
    for part, files, labels in (
        ("train", split.train_files, split.train_labels),
        ("test", split.test_files, split.test_labels),
    ):
        order = rng.permutation(len(files))
        samples = [Sample(index + k, files[i], labels[i]) for k, i in enumerate(order)]
        index += len(samples)
        shards = []
        for start in range(0, len(samples), shard_size):
            name = f"{part}-{start // shard_size:06d}.tar"
            tasks.append((source, out, name, samples[start : start + shard_size]))
            shards.append({"file": name, "count": len(samples[start : start + shard_size])})
        manifest[part] = {"count": len(samples), "shards": shards}
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # written again last: a partial folder has none
    _remove_temps(out)  # what a killed run was writing
    workers = min(workers if workers > 0 else _cores(), len(tasks))
    try:
        if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("fork")  # workers need only numpy and Pillow
            with context.Pool(workers, initializer=imagefolder._open, initargs=(source,)) as pool:
                list(pool.imap_unordered(_write_shard, tasks))
        else:
            imagefolder._open(source)
            try:
                for task in tasks:
                    _write_shard(task)
            finally:
                imagefolder._close()
    except BaseException:
        _remove_temps(out)  # the shards the stopped pool's workers were writing
        raise
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1))
    return manifest


def _remove_temps(out: Path) -> None:
    for path in out.glob(".*.tmp"):
        path.unlink(missing_ok=True)


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a shard folder, checked; DataError when it is missing or damaged."""
    path = Path(folder).expanduser() / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        ok = manifest.get("format") == FORMAT and all(
            isinstance(manifest[s]["shards"], list) for s in SPLITS
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise corrupt_source(path, exc, "run `equissl data prepare` again") from None
    if not ok:
        raise corrupt_source(path, ValueError("not an equissl shard manifest"), "prepare again")
    return manifest


def shard_samples(path: Path, count: int) -> list[tuple[int, bytes, int]]:
    """The (index, encoded image, label) samples of one shard, in file order; DataError when the
    file is missing, truncated or corrupt, or holds other than `count` samples."""
    from webdataset.tariterators import tarfile_samples

    fix = "run `equissl data prepare` again to rewrite it"
    out = []
    try:
        for sample in tarfile_samples([{"url": str(path)}]):
            image = sample.get("jpg", sample.get("png"))
            if image is None or "cls" not in sample:
                raise ValueError(f"sample {sample.get('__key__')} has no image or label")
            out.append((int(sample["__key__"]), image, int(sample["cls"])))
    except Exception as exc:  # noqa: BLE001 - tarfile, webdataset and I/O errors
        raise corrupt_source(path, exc, fix) from None
    if len(out) != count:
        raise corrupt_source(path, ValueError(f"{len(out)} samples, expected {count}"), fix)
    return out


def iter_split(folder: Path, manifest: dict[str, Any], split: str) -> Iterator[tuple]:
    """Every (index, encoded image, label) of a split, shard by shard."""
    for shard in manifest[split]["shards"]:
        yield from shard_samples(folder / shard["file"], shard["count"])


def read_shards(
    folder: str | Path, *, size: int | None = None, cache_dir: str | Path | None = None
) -> DataSplits:
    """A shard folder decoded into memory (the resident path), in prepared order, through the
    decode cache in `cache_dir`; images that differ in size are resized to size x size (see
    imagefolder.stack_images)."""
    folder = Path(folder).expanduser().resolve()
    manifest = read_manifest(folder)
    files = [folder / MANIFEST] + [
        folder / shard["file"] for split in SPLITS for shard in manifest[split]["shards"]
    ]
    options = {"size": size, "decoder": imagefolder.DECODER_VERSION}
    return cached_read(cache_dir, "shards", files, options, lambda: _decode(folder, manifest, size))


def _decode(folder: Path, manifest: dict[str, Any], size: int | None) -> DataSplits:
    parts = []
    for split in SPLITS:
        samples = list(iter_split(folder, manifest, split))
        names = [f"{folder}/{index:06d}" for index, _, _ in samples]
        arrays = [
            decode_image(data, name) for (_, data, _), name in zip(samples, names, strict=True)
        ]
        labels = torch.tensor([label for _, _, label in samples], dtype=torch.int64)
        if arrays:
            images = torch.from_numpy(imagefolder.stack_images(arrays, names, folder, size))
        else:
            images = torch.zeros(0, *(parts[0].images.shape[1:] if parts else (3, 1, 1)))
            images = images.to(torch.uint8)
        parts.append(ImageSet(images, labels, list(manifest["classes"])))
    return DataSplits(parts[0], parts[1], None, "imagefolder")
