"""What a run prints while it works: a progress bar on a terminal, one line per epoch elsewhere
(CI, log files), and one line per long phase (data, features, each evaluation part) with its time.

Lines go to stdout from the first process only. Lightning's advertising ("💡 Tip: ...") is
filtered out of its log here, so no third-party tips print whichever way a run is started.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import lightning as L
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from lightning.pytorch.utilities import rank_zero_only

from equissl.data import DataSplits, load_data
from equissl.data.load import DataSettings


def format_eta(seconds: float) -> str:
    """A remaining time, to the second below an hour: `42s`, `1m26s`, `2h05m`."""
    s = max(int(round(seconds)), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def format_seconds(seconds: float) -> str:
    """A measured time: `0.42 s`, `12.3 s` below a minute, then as format_eta (`1m26s`)."""
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    return format_eta(seconds)


def remaining_seconds(done: int, total: int, elapsed: float) -> float | None:
    """The time left for `total` units after `done` took `elapsed` seconds, at the same pace;
    None before the first unit is done."""
    if done <= 0:
        return None
    return elapsed / done * max(total - done, 0)


def echo(line: str) -> None:
    """Print one progress line (first process only), at once."""
    if getattr(rank_zero_only, "rank", 0) == 0:
        print(line, flush=True)


class Phase:
    """A timed part of a run; `what` may be set inside the block (e.g. once a count is known)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.seconds = 0.0
        self.silent = False  # set inside the block: nothing worth a line happened


@contextmanager
def phase(what: str) -> Iterator[Phase]:
    """Time the block and print `<what> in <time>` when it ends (not when it raises)."""
    p = Phase(what)
    t0 = time.perf_counter()
    yield p
    p.seconds = time.perf_counter() - t0
    if not p.silent:
        echo(f"{p.what} in {format_seconds(p.seconds)}")


def count(n: int) -> str:
    """`60,000`: a count with thousands separators."""
    return f"{n:,}"


def timed_load(settings: DataSettings, config_key: str = "data") -> DataSplits:
    """`load_data`, with a line: `loaded cifar10: 60,000 images (50,000 train, 10,000 test,
    3x32x32) in 31.2 s` (decoding, or reading the decode cache)."""
    with phase(f"loaded {settings.name}") as p:
        data = load_data(settings, config_key)
        parts = [("train", data.train), ("test", data.test), ("unlabeled", data.unlabeled)]
        sizes = [f"{count(len(part.labels))} {name}" for name, part in parts if part is not None]
        total = sum(len(part.labels) for _, part in parts if part is not None)
        shape = "x".join(str(d) for d in data.train.images.shape[1:])
        p.what += f": {count(total)} images ({', '.join(sizes)}, {shape})"
    return data


# Entries of a results dict that describe the run rather than measure it.
NOT_METRICS = ("name", "method", "backbone", "data", "seed", "checkpoint", "resumed")


def metric_items(results: dict, prefix: str = "") -> list[tuple[str, str]]:
    """(key, formatted value) of every number in `results`, nested dicts flattened as
    `part.key` (e.g. `low_label_1.linear_acc`); per-seed lists and curves are left to the
    results file."""
    items = []
    for key, value in results.items():
        if not prefix and key in NOT_METRICS:
            continue
        if isinstance(value, dict):
            items.extend(metric_items(value, f"{prefix}{key}."))
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        else:
            text = str(value) if isinstance(value, int) else f"{value:.2f}"
            items.append((f"{prefix}{key}", text))
    return items


# -- Lightning's tips --------------------------------------------------------------------------
class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return "💡" not in message and not message.lstrip().startswith("Tip:")


_NO_TIPS = _NoTips()


def silence_tips() -> None:
    """Drop Lightning's tips (litlogger, litmodels) from the loggers that print them; idempotent."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if _NO_TIPS not in logger.filters:
            logger.addFilter(_NO_TIPS)


# -- per-epoch progress ------------------------------------------------------------------------
def epoch_metrics(trainer: L.Trainer) -> dict[str, float]:
    """The epoch means the module logged as `epoch/<name>` (loss, online_acc, ...)."""
    out = {}
    for key, value in trainer.callback_metrics.items():
        if key.startswith("epoch/"):
            out[key.removeprefix("epoch/")] = float(value)
    return out


def describe_metrics(metrics: dict[str, float]) -> str:
    """`loss 4.21  online_acc 31.0%`: losses as they are, accuracies (fractions) in percent."""
    parts = []
    # transform_acc repeats the first predicted transformation's accuracy under one name
    shown = [k for k in metrics if k != "transform_acc"]
    for key in sorted(shown, key=lambda k: (k != "loss", k)):
        value = metrics[key]
        parts.append(f"{key} {100 * value:.1f}%" if key.endswith("_acc") else f"{key} {value:.4g}")
    return "  ".join(parts)


class RunClock:
    """The pace of this process's steps, for the ETA of the whole pretraining (a resumed run
    counts from where it resumed)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.first_step = 0

    def start(self, trainer: L.Trainer) -> None:
        self.t0, self.first_step = time.perf_counter(), trainer.global_step

    def eta(self, trainer: L.Trainer) -> float | None:
        total = trainer.max_epochs * trainer.num_training_batches
        done = trainer.global_step - self.first_step
        return remaining_seconds(done, total - self.first_step, time.perf_counter() - self.t0)


class EpochLines(Callback):
    """One line per epoch: `epoch 3/10  loss 4.21  online_acc 31.0%  12.3 s  ETA 1m26s`, where
    the ETA is the rest of the pretraining at the pace so far; a last line with the total.

    Lightning calls callbacks' epoch-end hooks before the module's, where the epoch means are
    logged, so the line is timed there and printed at the next hook (the next epoch's start,
    or the end of training), when the means are in `callback_metrics`."""

    def __init__(self) -> None:
        self.clock = RunClock()
        self.epoch_t0 = 0.0
        self.pending: tuple[int, float, float | None] | None = None  # epoch, seconds, ETA

    def on_train_start(self, trainer, module) -> None:
        self.clock.start(trainer)

    def on_train_epoch_start(self, trainer, module) -> None:
        self._flush(trainer)
        self.epoch_t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, module) -> None:
        seconds = time.perf_counter() - self.epoch_t0
        self.pending = (trainer.current_epoch, seconds, self.clock.eta(trainer))

    def on_train_end(self, trainer, module) -> None:
        self._flush(trainer)
        steps = trainer.global_step - self.clock.first_step
        echo(
            f"pretrained: {count(steps)} steps in "
            f"{format_seconds(time.perf_counter() - self.clock.t0)}"
        )

    def _flush(self, trainer) -> None:
        if self.pending is None:
            return
        epoch, seconds, eta = self.pending
        self.pending = None
        line = f"epoch {epoch + 1}/{trainer.max_epochs}"
        metrics = describe_metrics(epoch_metrics(trainer))
        line += f"  {metrics}" if metrics else ""
        line += f"  {format_seconds(seconds)}"
        if eta is not None and epoch + 1 < trainer.max_epochs:
            line += f"  ETA {format_eta(eta)}"
        echo(line)


class RunProgressBar(TQDMProgressBar):
    """Lightning's bar, with the ETA of the whole pretraining beside the epoch's."""

    def __init__(self, refresh_rate: int) -> None:
        super().__init__(refresh_rate=refresh_rate)
        self.clock = RunClock()

    def on_train_start(self, trainer, module) -> None:
        super().on_train_start(trainer, module)
        self.clock.start(trainer)

    def get_metrics(self, trainer, module) -> dict:
        items = {
            k.removeprefix("epoch/"): v
            for k, v in super().get_metrics(trainer, module).items()
            if k != "v_num"
        }
        eta = self.clock.eta(trainer)
        if eta is not None:
            items["run ETA"] = format_eta(eta)
        return items


def on_terminal() -> bool:
    """Whether stdout is a terminal (a bar redraws in place there; elsewhere it would spam)."""
    return bool(getattr(sys.stdout, "isatty", lambda: False)())


def progress_callbacks(bar: bool, refresh_rate: int) -> tuple[list[Callback], bool]:
    """(callbacks, whether Lightning's bar is on): the bar where asked for and stdout is a
    terminal, else the per-epoch lines."""
    silence_tips()
    if bar and on_terminal():
        return [RunProgressBar(refresh_rate)], True
    return [EpochLines()], False
