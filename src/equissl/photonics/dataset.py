"""Photonic-crystal datasets on disk: seeded cells, DOS labels, shards that survive interruption.

    spec = DatasetSpec("blob", n_labeled=1000, n_unlabeled=5000, seed=0)
    folder = build_dataset(spec, workers=2).path      # computes what is missing, else returns
    data = load_dataset(folder)                       # cells (L, S, S), dos (L, n_freq), unlabeled

A dataset folder holds `dataset.json` (the settings it was built with) and shards
`labeled-00000.npz` (cells float32 (n, S, S), dos float32 (n, n_freq), index int64 (n,)) and
`unlabeled-00000.npz` (cells and index only: unlabelled cells need no DOS). Shard k of a split
holds the cells with indices [k * shard_size, (k + 1) * shard_size).

Determinism: cell i of a split is drawn by `generate_cells(family, 1, seed=cell_seed(...))`,
with a seed hashed from (seed, family, split, i) alone, and labelled on one thread, so its
content and label do not depend on the worker count or the shard size. The labelled and the
unlabelled cells come from different seed streams and never coincide.

Resume: each shard is written by the process that computed it to a temporary file renamed into
place, so an interrupted build keeps its finished shards and the next call computes the rest.
Asking for an existing folder with different settings is a one-line `DataError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import multiprocessing
import os
import sys
import zipfile
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from equissl.errors import ConfigError, DataError
from equissl.photonics.cells import FAMILIES, check_cell, generate_cells
from equissl.photonics.dos import dos_target
from equissl.photonics.settings import PhCSettings
from equissl.reports.atomic import write_bytes_atomic, write_text_atomic
from equissl.seeds import hashed_seed

SPLITS = ("labeled", "unlabeled")
FORMAT = 1
META = "dataset.json"
DEFAULT_ROOT = Path(".cache/equissl/photonics")
CELL_SIZE = 32


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset folder holds: family, sizes, seed, shard size and the label settings."""

    family: str
    n_labeled: int
    n_unlabeled: int
    seed: int = 0
    shard_size: int = 64
    settings: PhCSettings = field(default_factory=PhCSettings)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(
                f"unknown photonic family {self.family!r}; choose one of {', '.join(FAMILIES)}"
            )
        for key in ("n_labeled", "n_unlabeled", "seed"):
            value = getattr(self, key)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise ConfigError(f"photonics {key} must be an integer >= 0, got {value!r}")
        if not (isinstance(self.shard_size, int) and self.shard_size >= 1):
            raise ConfigError(
                f"photonics shard_size must be an integer >= 1, got {self.shard_size!r}"
            )

    def record(self) -> dict:
        """The settings as written to dataset.json."""
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_record(cls, record: dict) -> DatasetSpec:
        record = {k: v for k, v in record.items() if k != "format"}
        return cls(**{**record, "settings": PhCSettings(**record["settings"])})

    def count(self, split: str) -> int:
        return self.n_labeled if split == "labeled" else self.n_unlabeled

    def shards(self, split: str) -> list[tuple[str, int, int]]:
        """(file name, first index, end index) of each shard of `split`."""
        n, size = self.count(split), self.shard_size
        return [
            (f"{split}-{k:05d}.npz", start, min(start + size, n))
            for k, start in enumerate(range(0, n, size))
        ]

    def default_dir(self, root: str | Path = DEFAULT_ROOT) -> Path:
        """`<root>/<family>-l<L>-u<U>-s<seed>-<hash of all settings>`."""
        digest = hashlib.sha1(json.dumps(self.record(), sort_keys=True).encode()).hexdigest()
        name = f"{self.family}-l{self.n_labeled}-u{self.n_unlabeled}-s{self.seed}-{digest[:8]}"
        return Path(root) / name


@dataclass
class BuildResult:
    path: Path
    computed: list[str]  # the shard files this call wrote


@dataclass
class PhCDataset:
    spec: DatasetSpec
    path: Path
    cells: torch.Tensor  # (L, S, S) float32 labelled cells
    dos: torch.Tensor  # (L, n_freq) float32: DOS - empty-lattice DOS
    unlabeled: torch.Tensor  # (U, S, S) float32


def cell_seed(seed: int, family: str, split: str, index: int) -> int:
    """The generator seed of one cell: a 63-bit hash of (seed, family, split, index)."""
    return hashed_seed(f"equissl-phc/{seed}/{family}/{split}/{index}")


def make_cells(family: str, split: str, seed: int, start: int, stop: int) -> torch.Tensor:
    """Cells start..stop-1 of a split, (stop - start, S, S) float32."""
    cells = [
        generate_cells(family, 1, seed=cell_seed(seed, family, split, i), size=CELL_SIZE)
        for i in range(start, stop)
    ]
    return torch.cat(cells) if cells else torch.zeros(0, CELL_SIZE, CELL_SIZE)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with `count` torch CPU threads (0: leave the setting), then restore it."""
    before = torch.get_num_threads()
    if count > 0:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _init_worker() -> None:
    torch.set_num_threads(1)


def compute_shard(folder: str, record: dict, split: str, name: str, start: int, stop: int) -> str:
    """Make (and label) one shard and write it atomically into `folder`; returns its name."""
    spec = DatasetSpec.from_record(record)
    cells = make_cells(spec.family, split, spec.seed, start, stop)
    arrays = {"cells": cells.numpy(), "index": np.arange(start, stop, dtype=np.int64)}
    if split == "labeled":
        arrays["dos"] = dos_target(cells, spec.settings).to(torch.float32).numpy()
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    try:
        write_bytes_atomic(Path(folder) / name, buf.getvalue())
    except OSError as exc:
        raise DataError(f"cannot write photonic shard {Path(folder) / name}: {exc}") from None
    return name


def _prepare(folder: Path, spec: DatasetSpec) -> None:
    """Create `folder`, check it is writable, and record or check its settings."""
    fix = "choose another out= folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DataError(
            f"cannot create the photonic dataset folder {folder}: {reason}; {fix}"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"the photonic dataset folder {folder} is not writable; {fix}")
    meta = folder / META
    wanted = spec.record()
    if meta.is_file():
        found = _read_meta(folder)
        if found != wanted:
            keys = sorted(k for k in wanted if found.get(k) != wanted[k])
            diff = ", ".join(f"{k}: {found.get(k)!r} there, {wanted[k]!r} asked" for k in keys)
            raise DataError(
                f"{folder} holds a photonic dataset built with other settings ({diff}); "
                f"{fix}, or delete that folder"
            )
        return
    if any(not p.name.startswith(".") for p in folder.iterdir()):
        raise DataError(f"{folder} is not empty and holds no {META}; {fix}")
    try:
        write_text_atomic(meta, json.dumps(wanted, indent=2) + "\n")
    except OSError as exc:
        raise DataError(
            f"cannot write to the photonic dataset folder {folder}: {exc}; {fix}"
        ) from None


def _read_meta(folder: Path) -> dict:
    meta = folder / META
    try:
        found = json.loads(meta.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"no photonic dataset at {folder} (no {META}); build one with `equissl photonics build`"
        ) from None
    except (OSError, ValueError) as exc:
        raise DataError(f"unreadable {meta}: {exc}; delete the folder and build again") from None
    if not isinstance(found, dict) or found.get("format") != FORMAT:
        raise DataError(f"{meta} is not a photonic dataset record of format {FORMAT}")
    return found


def build_dataset(
    spec: DatasetSpec,
    out: str | Path | None = None,
    *,
    root: str | Path = DEFAULT_ROOT,
    workers: int | None = None,
    progress: bool = True,
) -> BuildResult:
    """Compute the shards `out` (default `spec.default_dir(root)`) lacks, on `workers` processes
    (default: all cores; 1 works in this process), each shard labelled on one thread.

    A finished dataset returns at once; a dataset with missing shards (an interrupted build)
    computes only those. Raises DataError for an unusable folder or other settings there.
    """
    folder = Path(out) if out else spec.default_dir(root)
    _prepare(folder, spec)
    todo = [
        (split, name, start, stop)
        for split in SPLITS
        for name, start, stop in spec.shards(split)
        if not (folder / name).is_file()
    ]
    if not todo:
        return BuildResult(folder, [])
    for stale in folder.glob(".*.tmp"):  # temporary files of an interrupted build
        stale.unlink(missing_ok=True)
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    jobs = [(str(folder), spec.record(), *job) for job in todo]
    bar = _progress(len(jobs), f"photonics {spec.family}: shards", progress)
    computed = []
    try:
        if workers == 1:
            with torch_threads(1):
                for job in jobs:
                    computed.append(compute_shard(*job))
                    bar.update()
        else:
            computed = _run_pool(jobs, workers, bar)
    finally:
        bar.close()
    return BuildResult(folder, computed)


def _run_pool(jobs: list[tuple], workers: int, bar) -> list[str]:
    # forkserver: workers fork from a clean server process, never from a parent whose thread
    # pools (OpenMP) may be in use; the server imports this module (and torch) once.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    computed = []
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
        pending = {pool.submit(compute_shard, *job) for job in jobs}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    computed.append(future.result())  # re-raises a worker's error
                    bar.update()
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return computed


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="shard", disable=not enabled, file=sys.stderr)


def _load_shard(path: Path, split: str, count: int, n_freq: int) -> dict[str, np.ndarray]:
    fix = "delete it and run the build again"
    if not path.is_file():
        raise DataError(f"photonic dataset incomplete: {path} is missing; run the build again")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"corrupt photonic shard {path}: {exc}; {fix}") from None
    needed = ("cells", "dos") if split == "labeled" else ("cells",)
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise DataError(f"corrupt photonic shard {path}: no {missing[0]!r} array; {fix}")
    try:
        check_cell(torch.from_numpy(arrays["cells"]))
    except DataError as exc:
        raise DataError(f"bad cells in {path}: {exc}; {fix}") from None
    if arrays["cells"].shape[0] != count:
        raise DataError(
            f"corrupt photonic shard {path}: {arrays['cells'].shape[0]} cells, expected {count}; {fix}"
        )
    if split == "labeled":
        dos = arrays["dos"]
        if dos.shape != (count, n_freq) or not np.isfinite(dos).all():
            raise DataError(
                f"corrupt photonic shard {path}: DOS of shape {dos.shape} or not finite; {fix}"
            )
    return arrays


def load_dataset(folder: str | Path) -> PhCDataset:
    """Read a finished dataset folder (shards validated: cells by `check_cell`, DOS finite)."""
    folder = Path(folder)
    try:
        spec = DatasetSpec.from_record(_read_meta(folder))
    except (TypeError, KeyError, ConfigError) as exc:
        raise DataError(f"{folder / META} holds bad settings ({exc}); build again") from None
    n_freq = spec.settings.n_freq
    parts: dict[str, dict[str, list[np.ndarray]]] = {s: {"cells": [], "dos": []} for s in SPLITS}
    for split in SPLITS:
        for name, start, stop in spec.shards(split):
            arrays = _load_shard(folder / name, split, stop - start, n_freq)
            parts[split]["cells"].append(arrays["cells"])
            if split == "labeled":
                parts[split]["dos"].append(arrays["dos"])

    def joined(arrays: list[np.ndarray], shape: tuple[int, ...]) -> torch.Tensor:
        return torch.from_numpy(np.concatenate(arrays)) if arrays else torch.zeros(0, *shape)

    square = (CELL_SIZE, CELL_SIZE)
    return PhCDataset(
        spec=spec,
        path=folder,
        cells=joined(parts["labeled"]["cells"], square).float(),
        dos=joined(parts["labeled"]["dos"], (n_freq,)).float(),
        unlabeled=joined(parts["unlabeled"]["cells"], square).float(),
    )
