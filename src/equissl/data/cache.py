"""Decode once: decoded splits saved as .npz under cache_dir, keyed by the source and options.

The default folder is the user's cache, not the working directory: `$EQUISSL_CACHE`, else
`$XDG_CACHE_HOME/equissl`, else `~/.cache/equissl`, so a run from any folder finds it.

The key hashes the reader, the absolute paths, sizes and mtimes of the source files (stat only,
no reading) and the options that change the decoded arrays, so an edited or replaced source is
read again. Files are written to a temporary name and renamed, so a crash never leaves half a
cache file; a cache file that does not load is deleted and the source read again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from equissl.data.types import DataSplits, ImageSet
from equissl.warn import warn

FORMAT_VERSION = 1
SPLITS = ("train", "test", "unlabeled")


def cache_key(reader: str, sources: Iterable[Path], options: Mapping[str, object]) -> str:
    """sha1 over the reader, each source file's absolute path, size and mtime, and the options."""
    digest = hashlib.sha1()
    header = {"version": FORMAT_VERSION, "reader": reader, "options": dict(options)}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for path in sources:
        stat = os.stat(path)
        digest.update(f"\n{os.path.abspath(path)}\t{stat.st_size}\t{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _to_arrays(splits: DataSplits) -> dict[str, np.ndarray]:
    arrays = {"classes": np.array(splits.train.classes, dtype=str)}
    for name in SPLITS:
        part = getattr(splits, name)
        if part is not None:
            arrays[f"{name}_images"] = part.images.numpy()
            arrays[f"{name}_labels"] = part.labels.numpy()
    return arrays


def _from_arrays(arrays: Mapping[str, np.ndarray], name: str) -> DataSplits:
    classes = [str(c) for c in arrays["classes"]]
    parts = {
        split: ImageSet(
            torch.from_numpy(arrays[f"{split}_images"]),
            torch.from_numpy(arrays[f"{split}_labels"]),
            classes,
        )
        for split in SPLITS
        if f"{split}_images" in arrays
    }
    return DataSplits(parts["train"], parts["test"], parts.get("unlabeled"), name)


def save_splits(path: Path, splits: DataSplits) -> None:
    """Write atomically: a temporary file in the same folder, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **_to_arrays(splits))
        os.chmod(tmp, 0o644)  # mkstemp creates owner-only files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_splits(path: Path, name: str) -> DataSplits:
    """Read a cache file written by save_splits (every array is read now, not lazily)."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    return _from_arrays(arrays, name)


def default_cache_dir() -> Path:
    """`$EQUISSL_CACHE`, else `$XDG_CACHE_HOME/equissl`, else `~/.cache/equissl`."""
    if os.environ.get("EQUISSL_CACHE"):
        return Path(os.environ["EQUISSL_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "equissl"


def cached_read(
    cache_dir: str | Path | None,
    reader: str,
    sources: Iterable[Path],
    options: Mapping[str, object],
    read: Callable[[], DataSplits],
) -> DataSplits:
    """`read()` through the cache (`cache_dir`, or `default_cache_dir()` when None): a hit loads
    the .npz, a miss reads and saves it."""
    folder = default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
    path = folder / f"{reader}-{cache_key(reader, sources, options)[:20]}.npz"
    if path.is_file():
        try:
            return load_splits(path, reader)
        except Exception as exc:  # noqa: BLE001 - any unreadable cache file is read again
            warn(f"ignoring unreadable cache file {path}: {' '.join(str(exc).split())[:200]}")
            path.unlink(missing_ok=True)
    splits = read()
    try:
        save_splits(path, splits)
    except OSError as exc:
        warn(f"cannot write cache file {path}: {exc.strerror or exc}; data is not cached")
    return splits
