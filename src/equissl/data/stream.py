"""Streaming training batches from shards (equissl.data.shards), for sets larger than memory.

DataLoader workers read the shards, decode each image and cut from it, at its source resolution,
the crops a training step needs (`CropSpec`: one per augmentation call of the method, e.g. the
two invariance views and E-SSL's small rotation crop), as fixed-size uint8 arrays; the batched
augmentation on the device then goes on without its crop step.

Which samples form step j of an epoch is fixed by the data alone, not by timing:
- the shard order of epoch e is a permutation seeded by (seed, e); rank r of w takes the shards
  r, r + w, ... of it (DDP ranks read disjoint shards);
- a rank's shards are dealt to `slots` streams (`slots` = the number of workers); a slot reads
  its shards in turn, each shard's samples permuted by (seed, e, shard);
- step j is the next `batch_size` samples of slot j mod slots; every rank takes the same number
  of steps, what every slot is sure to hold whatever the epoch's order (the rest of the epoch's
  samples are dropped, as a resident run drops the last partial batch);
- the crops of sample i in epoch e come from a generator seeded by (seed, e, i).
So a run resumed at any step reads exactly what the uninterrupted run read.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from equissl.augment.crop import CropSpec, sample_crop_boxes
from equissl.augment.stats import channel_stats
from equissl.data.imagefolder import decode_image
from equissl.data.shards import iter_split, read_manifest, shard_samples
from equissl.errors import DataError, UserError
from equissl.seeds import hashed_seed

RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
STATS_IMAGES = 1000  # images whose pixels give the normalisation statistics


def cut_crops(
    image: np.ndarray, specs: Sequence[CropSpec], generator: torch.Generator, channels: int
) -> list[np.ndarray]:
    """The uint8 (channels, size, size) crops of a decoded (H, W[, 3]) image, one per spec, in
    order: boxes drawn as the device augmentation draws them (equissl.augment.crop), cut and
    resized by PIL (antialiased, as torchvision's transforms on PIL images)."""
    pil = Image.fromarray(image)
    pil = pil.convert("L" if channels == 1 else "RGB")
    width, height = pil.size
    out = []
    for spec in specs:
        box = sample_crop_boxes(1, height, width, spec.scale, spec.ratio, generator)[0]
        top, left, h, w = (int(v) for v in box.tolist())
        crop = pil.resize(
            (spec.size, spec.size), RESAMPLE[spec.interpolation], box=(left, top, left + w, top + h)
        )
        array = np.asarray(crop)
        out.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
    return out


def epoch_shards(n: int, seed: int, epoch: int, rank: int, world: int, slots: int) -> list[list]:
    """The shard numbers each slot of rank `rank` reads in epoch `epoch`, in order."""
    order = torch.randperm(
        n, generator=torch.Generator().manual_seed(hashed_seed(f"{seed}:{epoch}"))
    )
    mine = order[rank::world].tolist()
    return [mine[s::slots] for s in range(slots)]


def steps_per_epoch(counts: Sequence[int], batch_size: int, world: int, slots: int) -> int:
    """Steps every rank takes in every epoch: each slot gets at least len(counts) // (world x
    slots) shards, so at least the samples of that many smallest shards."""
    per_slot = len(counts) // (world * slots)
    if per_slot == 0:
        raise DataError(
            f"the set has {len(counts)} shard(s), fewer than {world} process(es) x {slots} "
            "worker(s); prepare it with a smaller shard_size or lower data.workers"
        )
    steps = sum(sorted(counts)[:per_slot]) // batch_size
    if steps == 0:
        raise DataError(
            f"a worker's {per_slot} shard(s) hold fewer than the {batch_size} samples of a "
            "batch; lower optim.batch_size or data.workers, or prepare smaller shards"
        )
    return slots * steps


class _Slot:
    """The sample stream of one slot: its shards in order, each permuted; read forwards."""

    def __init__(self, folder: Path, shards: list[dict], numbers: list[int], key: str) -> None:
        self.folder, self.key = folder, key
        self.shards = [shards[i] for i in numbers]
        self.ends = np.cumsum([s["count"] for s in self.shards]).tolist()
        self.loaded, self.samples = -1, []

    def take(self, start: int, n: int) -> list[tuple[int, bytes, int]]:
        """Samples [start, start + n) of the stream (only the shards they lie in are read)."""
        out: list[tuple[int, bytes, int]] = []
        pos = start
        while len(out) < n:
            k = next(i for i, end in enumerate(self.ends) if end > pos)
            if k != self.loaded:
                shard = self.shards[k]
                samples = shard_samples(self.folder / shard["file"], shard["count"])
                g = torch.Generator().manual_seed(hashed_seed(f"{self.key}:{shard['file']}"))
                self.samples = [samples[i] for i in torch.randperm(len(samples), generator=g)]
                self.loaded = k
            first = pos - (self.ends[k] - self.shards[k]["count"])
            part = self.samples[first : first + n - len(out)]
            out += part
            pos += len(part)
        return out


class ShardStream(torch.utils.data.IterableDataset):
    """The training steps of one rank, read from the shard folder `folder`: each item a batch
    dict of `crops` (one uint8 (B, channels, size, size) tensor per spec), `labels` and
    `index` (int64 (B,): the samples' labels and prepared indices) and `step`. Set `epoch` and
    `start` (the first step, for a resumed run) before iterating. A DataError in a worker
    arrives as an item {"error": message}, raised by StreamLoader as one line."""

    def __init__(
        self,
        folder: str | Path,
        specs: Sequence[CropSpec],
        *,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        slots: int = 1,
        channels: int = 3,
    ) -> None:
        super().__init__()
        self.folder = Path(folder).expanduser()
        self.manifest = read_manifest(self.folder)
        self.shards = self.manifest["train"]["shards"]
        self.specs, self.batch_size, self.seed = list(specs), batch_size, seed
        self.rank, self.world, self.slots, self.channels = rank, world, max(slots, 1), channels
        self.steps = steps_per_epoch(
            [s["count"] for s in self.shards], batch_size, world, self.slots
        )
        self.epoch, self.start = 0, 0

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        try:
            yield from self._steps(range(self.start + worker, self.steps, workers))
        except UserError as exc:
            yield {"error": str(exc)}

    def _steps(self, steps: range) -> Iterator[dict[str, Any]]:
        numbers = epoch_shards(
            len(self.shards), self.seed, self.epoch, self.rank, self.world, self.slots
        )
        key = f"{self.seed}:{self.epoch}"
        streams: dict[int, _Slot] = {}
        for step in steps:
            slot = step % self.slots
            if slot not in streams:
                streams[slot] = _Slot(self.folder, self.shards, numbers[slot], key)
            local = step // self.slots
            samples = streams[slot].take(local * self.batch_size, self.batch_size)
            yield self._batch(samples, step)

    def _batch(self, samples: list[tuple[int, bytes, int]], step: int) -> dict[str, Any]:
        per_spec: list[list[np.ndarray]] = [[] for _ in self.specs]
        for index, data, _ in samples:
            image = decode_image(data, f"{self.folder}/{index:06d}")
            g = torch.Generator().manual_seed(hashed_seed(f"{self.seed}:{self.epoch}:{index}"))
            for crops, crop in zip(
                per_spec, cut_crops(image, self.specs, g, self.channels), strict=True
            ):
                crops.append(crop)
        return {
            "crops": [torch.from_numpy(np.stack(c)) for c in per_spec],
            "labels": torch.tensor([label for _, _, label in samples], dtype=torch.int64),
            "index": torch.tensor([index for index, _, _ in samples], dtype=torch.int64),
            "step": step,
        }


_PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


def die_with_parent(_worker_id: int = 0, parent: int | None = None) -> None:
    """A DataLoader worker's init: on Linux, the kernel kills the worker when its parent dies.
    A trainer killed by SIGKILL otherwise leaves its workers blocked for ever on a full queue
    (holding the trainer's stdout and stderr open); elsewhere a no-op. `parent`: the trainer's
    pid, for a worker whose parent died before this ran (at an epoch start, where the workers
    of the next epoch are forked): it exits at once."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError, TypeError):
        return
    if parent is not None and os.getppid() != parent:
        os._exit(0)  # (not sys.exit: the queue's feeder thread would wait for a dead reader)


class StreamLoader:
    """The steps of `dataset` for each epoch, read by `workers` DataLoader processes (0: this
    process), `len` of them; `position()` says, as a pass starts, which epoch it is and the step
    it starts at (0, or where a run resumed mid-epoch stopped)."""

    def __init__(
        self, dataset: ShardStream, workers: int, position: Callable[[], tuple[int, int]]
    ) -> None:
        self.dataset, self.workers, self.position = dataset, workers, position

    def __len__(self) -> int:
        return self.dataset.steps

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.dataset.epoch, self.dataset.start = self.position()
        if self.workers > 0:
            batches = iter(
                torch.utils.data.DataLoader(
                    self.dataset,
                    batch_size=None,
                    num_workers=self.workers,
                    prefetch_factor=2,
                    worker_init_fn=functools.partial(die_with_parent, parent=os.getpid()),
                )
            )
        else:
            batches = iter(self.dataset)
        for batch in batches:
            if "error" in batch:
                raise DataError(batch["error"])
            yield batch

    # Resumable in Lightning's sense: the start comes from the restored global step.
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def stream_stats(folder: str | Path, size: int, channels: int) -> tuple[torch.Tensor, ...]:
    """Per-channel mean and std (in [0, 1]) of the first STATS_IMAGES training images of a
    shard folder, each resized whole to size x size: the normalisation of a streamed run."""
    folder = Path(folder).expanduser()
    manifest = read_manifest(folder)
    whole = [CropSpec(size, (1.0, 1.0), (1.0, 1.0))]
    crops = []
    for index, data, _ in iter_split(folder, manifest, "train"):
        image = decode_image(data, f"{folder}/{index:06d}")
        crops += cut_crops(image, whole, torch.Generator().manual_seed(0), channels)
        if len(crops) >= STATS_IMAGES:
            break
    return channel_stats(torch.from_numpy(np.stack(crops)))
