"""Fault-injection cases: hostile input and unlucky events, and what `equissl` must do with each.

A case builds what it needs under a temporary folder, optionally injects a fault (a full disk, a
held lock) and runs the CLI. The contract: the exit status (2 for a user error), one line on
stderr naming the problem, nothing half-written (no temporary file left) and nothing lost (every
file that existed before is byte-identical after, unless the case says otherwise).

Used in-process by tests/faults/test_faults.py and in subprocesses by
benchmarks/fault_table.py, which writes the table of docs/results/reliability.md.
"""

from __future__ import annotations

import builtins
import contextlib
import csv
import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TINY = [
    "data.limit=160",
    "data.test_limit=60",
    "data.size=12",
    "backbone.width=4",
    "optim.batch_size=32",
    "optim.epochs=2",
    "optim.warmup_epochs=1",
    "trainer.accelerator=cpu",
    "trainer.progress_bar=false",
    "trainer.threads=1",
    "trainer.log_every_n_steps=1",
    "eval.linear.epochs=5",
    "eval.linear.seeds=2",
    "eval.knn.k=5",
]


def tiny(tmp: Path, *extra: str, name: str = "run") -> list[str]:
    """A pretraining command line of a few seconds on the embedded digits."""
    return ["pretrain", "simclr", *TINY, f"out_dir={tmp / 'runs'}", f"name={name}", *extra]


# -- a finished run, trained once and copied into each case's folder -------------------------------
_TRAINED: dict[str, Path] = {}


def trained_run(cache: Path) -> Path:
    """The folder of a finished tiny run (trained once per process, under `cache`)."""
    if "run" not in _TRAINED:
        from equissl.app.cli import main

        assert main(tiny(cache, name="base")) == 0
        _TRAINED["run"] = cache / "runs" / "base"
    return _TRAINED["run"]


def copy_run(ctx: Context, name: str = "base") -> Path:
    dest = ctx.tmp / "runs" / name
    shutil.copytree(ctx.trained, dest)
    return dest


def poison_checkpoint(path: Path) -> None:
    """Give a checkpoint an infinite BatchNorm running_var, as lr=1e6 does."""
    import torch

    ckpt = torch.load(path, weights_only=False)
    key = next(k for k in ckpt["state_dict"] if k.endswith("running_var"))
    ckpt["state_dict"][key][0] = float("inf")
    torch.save(ckpt, path)


@dataclass
class Context:
    tmp: Path
    trained: Path  # a finished run to copy from (outside tmp)


# -- faults: (module, name, replacement) set before the CLI runs ---------------------------------
def disk_full_for(fragment: str) -> Callable:
    """`open` on a disk that is full for files whose path holds `fragment`: such a file opened
    for writing is made, then writing it fails (a temporary file left behind would show)."""

    def open_(file, mode="r", *args, **kwargs):
        if fragment in str(file) and any(m in mode for m in "wxa"):
            builtins.open(file, mode, *args, **kwargs).close()
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return builtins.open(file, mode, *args, **kwargs)

    return open_


FAULTS: dict[str, tuple[str, str, Callable]] = {
    "checkpoint-disk-full": ("equissl.app.train", "open", disk_full_for("last.ckpt")),
    "results-disk-full": ("equissl.reports.atomic", "open", disk_full_for("results.json")),
    "metrics-disk-full": ("equissl.reports.atomic", "open", disk_full_for("metrics.csv")),
    "export-disk-full": ("equissl.reports.atomic", "open", disk_full_for("enc.json")),
}


def apply_fault(name: str | None, setattr_: Callable | None = None) -> None:
    """Inject FAULTS[name]: monkeypatch.setattr in the tests, plain setattr in a subprocess."""
    if name is None:
        return
    import importlib

    module, attribute, replacement = FAULTS[name]
    target = importlib.import_module(module)
    if setattr_ is None:
        setattr(target, attribute, replacement)
    else:
        setattr_(target, attribute, replacement, raising=False)


# -- the cases -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    family: str
    name: str
    argv: Callable[[Context], list[str]]  # sets up files under ctx.tmp, returns the CLI arguments
    expect: str  # a fragment of the one line on stderr
    status: int = 2
    fault: str | None = None
    check: Callable[[Context], None] | None = None  # what must (not) be on disk afterwards
    keeps_files: bool = True  # files present before are byte-identical after

    @property
    def id(self) -> str:
        return f"{self.family}/{self.name}"


def _nothing_at(*parts: str) -> Callable[[Context], None]:
    def check(ctx: Context) -> None:
        path = ctx.tmp.joinpath(*parts)
        assert not path.exists(), f"{path} was created"

    return check


def _write(ctx: Context, rel: str, data: bytes) -> Path:
    path = ctx.tmp / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _image_folder(ctx: Context, corrupt: bool = False) -> Path:
    import numpy as np
    from PIL import Image

    root = ctx.tmp / "images"
    rng = np.random.default_rng(0)
    for cls in ("ant", "bee"):
        (root / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
                root / cls / f"{i}.png"
            )
    if corrupt:
        (root / "bee" / "9.png").write_bytes(os.urandom(64))
    return root


def _eval(ctx: Context, ckpt: Path, *extra: str) -> list[str]:
    return ["eval", f"ckpt={ckpt}", *extra]


def _lock_run(ctx: Context) -> list[str]:
    """A run folder held by another process (a flock on its .lock, as a live run holds it)."""
    run = ctx.tmp / "runs" / "run"
    run.mkdir(parents=True)
    fd = os.open(run / ".lock", os.O_CREAT | os.O_RDWR)
    os.write(fd, b"process 4242")
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _HELD.append(fd)  # released by release_held() after the case
    return tiny(ctx.tmp)


_HELD: list[int] = []


def release_held() -> None:
    while _HELD:
        os.close(_HELD.pop())


def _stale_metrics(ctx: Context) -> list[str]:
    run = ctx.tmp / "runs" / "run"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("epoch,step,train/loss\n0,0,9.9\n0,1,9.9\n0,2,9.9\n")
    return tiny(ctx.tmp, "optim.epochs=1")


def _metrics_clean(ctx: Context) -> None:
    with open(ctx.tmp / "runs" / "run" / "metrics.csv", newline="") as f:
        steps = [r["step"] for r in csv.DictReader(f) if r.get("train/loss")]
    assert steps == [str(s) for s in range(len(steps))], steps
    assert "9.9" not in (ctx.tmp / "runs" / "run" / "metrics.csv").read_text()


def _checkpoint_kept(ctx: Context) -> None:
    import torch

    run = ctx.tmp / "runs" / "base"
    assert torch.load(run / "last.ckpt", weights_only=False)["global_step"] == 10
    assert not list(run.glob(".*tmp")), list(run.glob(".*tmp"))


def _no_success_with_nonfinite_weights(ctx: Context) -> None:
    import torch

    from equissl.finite import nonfinite_names

    run = ctx.tmp / "runs" / "run"
    assert not (run / "results.json").exists()
    if (run / "last.ckpt").exists():
        state = torch.load(run / "last.ckpt", weights_only=False)["state_dict"]
        assert not nonfinite_names(state)


def _sweep_file(ctx: Context, runs: str, overrides: str = "[]") -> Path:
    path = ctx.tmp / "my-sweep.yaml"
    path.write_text(
        "name: s\npresets: [simclr]\n"
        f"overrides: [{', '.join(TINY)}]\n"
        f"columns: [name, linear_acc]\nruns:\n{runs}\n"
    )
    return path


def _sweep_with_failing_member(ctx: Context) -> list[str]:
    path = _sweep_file(
        ctx,
        "  - {name: ok, overrides: [optim.epochs=1]}\n"
        "  - {name: too-big, overrides: [optim.batch_size=5000, optim.epochs=1]}",
    )
    return ["sweep", str(path), f"out_dir={ctx.tmp / 'runs'}"]


def _failure_recorded(ctx: Context) -> None:
    root = ctx.tmp / "runs" / "s"
    failed = json.loads((root / "too-big" / "results.json").read_text())
    assert "larger than the" in failed["failed"], failed
    assert "linear_acc" in json.loads((root / "ok" / "results.json").read_text())
    assert (root / "results.md").is_file() and (root / "results.csv").is_file()


def _sweep_override_conflict(ctx: Context) -> list[str]:
    path = _sweep_file(
        ctx,
        "  - {name: trained}\n  - {name: random-init, overrides: [optim.epochs=0]}",
    )
    return ["sweep", str(path), f"out_dir={ctx.tmp / 'runs'}", "optim.epochs=3"]


def _out_dir_file(ctx: Context) -> list[str]:
    _write(ctx, "afile", b"not a folder")
    return ["pretrain", "simclr", *TINY, f"out_dir={ctx.tmp / 'afile'}"]


def _bad_zip(ctx: Context) -> list[str]:
    path = _write(ctx, "data.zip", os.urandom(256))
    return tiny(ctx.tmp, "data.name=imagefolder", f"data.path={path}")


def _truncated(ctx: Context) -> Path:
    run = copy_run(ctx)
    data = (run / "last.ckpt").read_bytes()
    (run / "last.ckpt").write_bytes(data[: len(data) // 2])
    return run


def _not_ours(ctx: Context) -> Path:
    import torch

    path = ctx.tmp / "other.ckpt"
    torch.save({"weights": torch.ones(3)}, path)
    return path


def _poisoned(ctx: Context) -> Path:
    run = copy_run(ctx)
    poison_checkpoint(run / "last.ckpt")
    return run


def _previous_export(ctx: Context) -> list[str]:
    run = copy_run(ctx)
    from equissl.app.cli import main

    out = ctx.tmp / "export" / "enc.safetensors"
    with contextlib.redirect_stdout(open(os.devnull, "w")):  # noqa: SIM115 - closed at exit
        assert main(["export", f"ckpt={run / 'last.ckpt'}", f"out={out}"]) == 0
    return ["export", f"ckpt={run / 'last.ckpt'}", f"out={out}"]


def _resume_more_epochs(ctx: Context) -> list[str]:
    copy_run(ctx)
    return tiny(ctx.tmp, "optim.epochs=3", name="base")


def _results_kept(ctx: Context) -> None:
    run = ctx.tmp / "runs" / "base"
    assert not [p for p in run.rglob("*.tmp")], "temporary files left"
    json.loads((run / "results.json").read_text())


CASES: list[Case] = [
    # config: rejected when read, before anything is made
    Case("config", "non-finite lr", lambda c: tiny(c.tmp, "optim.lr=nan"), "it must be a finite number", check=_nothing_at("runs")),
    Case("config", "infinite weight", lambda c: tiny(c.tmp, "esimclr", "method.equivariance.0.weight=inf"), "finite number", check=_nothing_at("runs")),
    Case("config", "negative momentum", lambda c: tiny(c.tmp, "optim.momentum=-0.9"), "'optim.momentum': -0.9; use 0 or more"),
    Case("config", "momentum of 1 or more", lambda c: tiny(c.tmp, "optim.momentum=1.5"), "use 0 <= m < 1"),
    Case("config", "negative weight decay", lambda c: tiny(c.tmp, "optim.weight_decay=-1e-4"), "'optim.weight_decay'"),
    Case("config", "malformed YAML override", lambda c: tiny(c.tmp, "method.equivariance=[{transform: rotation"), "cannot parse 'method.equivariance="),
    Case("config", "unknown key", lambda c: tiny(c.tmp, "optim.lrr=0.1"), "unknown config key 'optim.lrr' (did you mean optim.lr?)"),
    Case("config", "text for a number", lambda c: tiny(c.tmp, "optim.epochs=many"), "bad value for 'optim.epochs'"),
    Case("config", "run name '.'", lambda c: tiny(c.tmp, name="."), "bad value for 'name'", check=_nothing_at("runs")),
    Case("config", "run name '../x'", lambda c: tiny(c.tmp, name="../x"), "bad value for 'name'", check=_nothing_at("x")),
    Case("config", "run name with '/'", lambda c: tiny(c.tmp, name="a/b"), "bad value for 'name'", check=_nothing_at("runs")),
    Case("config", "GPU asked for, none here", lambda c: tiny(c.tmp, "trainer.accelerator=gpu"), "no CUDA GPU", check=_nothing_at("runs")),
    Case("config", "missing preset file", lambda c: ["pretrain", str(c.tmp / "nope.yaml")], "config file not found"),
    Case("config", "malformed preset file", lambda c: ["pretrain", str(_write(c, "bad.yaml", b"optim: [1, 2\n"))], "cannot read config"),
    Case("config", "preset file not a mapping", lambda c: ["pretrain", str(_write(c, "list.yaml", b"- 1\n- 2\n"))], "must be a mapping"),
    Case("config", "unknown command", lambda c: ["pretrian"], "unknown command 'pretrian'"),
    # data: missing, corrupt or too small, one line before training
    Case("data", "CIFAR-10 folder missing", lambda c: tiny(c.tmp, "data.name=cifar10", f"data.path={c.tmp / 'none'}"), "none"),
    Case("data", "zip that is not a zip", _bad_zip, "data.zip"),
    Case("data", "empty image folder", lambda c: tiny(c.tmp, "data.name=imagefolder", f"data.path={(c.tmp / 'empty').mkdir() or c.tmp / 'empty'}"), "empty"),
    Case("data", "corrupt image in a folder", lambda c: tiny(c.tmp, "data.name=imagefolder", f"data.path={_image_folder(c, corrupt=True)}", "optim.batch_size=4", "data.size=null", "data.limit=null", "data.test_limit=null"), "9.png"),
    Case("data", "batch larger than the data", lambda c: tiny(c.tmp, "optim.batch_size=5000"), "larger than the 160 training images"),
    # training that diverges: stopped, never reported as a success, no non-finite checkpoint
    Case("training", "lr=1e6 for 1 epoch", lambda c: tiny(c.tmp, "optim.lr=1e6", "optim.warmup_epochs=0", "optim.epochs=1"), "became NaN or infinite", check=_no_success_with_nonfinite_weights),
    Case("training", "lr=1e6 for 3 epochs", lambda c: tiny(c.tmp, "optim.lr=1e6", "optim.warmup_epochs=0", "optim.epochs=3"), "became NaN or infinite", check=_no_success_with_nonfinite_weights),
    # checkpoints: refused with one line, never half-read
    Case("checkpoints", "eval of a missing checkpoint", lambda c: _eval(c, c.tmp / "none.ckpt"), "checkpoint not found"),
    Case("checkpoints", "eval of a truncated checkpoint", lambda c: _eval(c, _truncated(c) / "last.ckpt"), "is it truncated?"),
    Case("checkpoints", "eval of a non-finite checkpoint", lambda c: _eval(c, _poisoned(c) / "last.ckpt"), "holds non-finite weights", check=_nothing_at("runs", "base", "eval.json")),
    Case("checkpoints", "export of a non-finite checkpoint", lambda c: ["export", f"ckpt={_poisoned(c) / 'last.ckpt'}", f"out={c.tmp / 'e.safetensors'}"], "non-finite", check=_nothing_at("e.safetensors")),
    Case("checkpoints", "export of a foreign checkpoint", lambda c: ["export", f"ckpt={_not_ours(c)}", f"out={c.tmp / 'e.safetensors'}"], "not an equissl checkpoint"),
    Case("checkpoints", "resume from a truncated last.ckpt", lambda c: (_truncated(c), tiny(c.tmp, name="base"))[1], "cannot resume from"),
    Case("checkpoints", "resume with another backbone", lambda c: (copy_run(c), tiny(c.tmp, "backbone.width=8", name="base"))[1], "was written with backbone.width=4, not 8"),
    Case("checkpoints", "resume with fewer epochs", lambda c: (copy_run(c), tiny(c.tmp, "optim.epochs=1", name="base"))[1], "past optim.epochs=1"),
    Case("checkpoints", "resume=never on a finished run", lambda c: (copy_run(c), tiny(c.tmp, "resume=never", name="base"))[1], "already holds a run"),
    # outputs: checked before the work; a full disk keeps the previous good file
    Case("outputs", "out_dir is a file", _out_dir_file, "is not a folder"),
    Case("outputs", "out_dir under /proc", lambda c: ["pretrain", "simclr", *TINY, "out_dir=/proc/equissl-runs"], "cannot write the run folder"),
    Case("outputs", "eval.json blocked by a folder", lambda c: (copy_run(c), (c.tmp / "runs" / "base" / "eval.json").mkdir(), _eval(c, c.tmp / "runs" / "base" / "last.ckpt"))[2], "a folder of that name is in the way"),
    Case("outputs", "report into /proc", lambda c: ["report", str(copy_run(c)), "out=/proc/equissl-report"], "cannot write the report"),
    Case("outputs", "bench results into /proc", lambda c: ["bench", "simclr", *TINY, "out=/proc/x/bench.json"], "cannot write the benchmark results"),
    Case("outputs", "export into a file's folder", lambda c: ["export", f"ckpt={copy_run(c) / 'last.ckpt'}", f"out={_write(c, 'afile', b'x')}/e.safetensors"], "is not a folder"),
    Case("outputs", "disk full writing last.ckpt", _resume_more_epochs, "cannot write", fault="checkpoint-disk-full", check=_checkpoint_kept, keeps_files=False),
    Case("outputs", "disk full writing results.json", _resume_more_epochs, "No space left on device: $TMP/runs/base/results.json", fault="results-disk-full", check=_results_kept, keeps_files=False),
    Case("outputs", "disk full when a resume rewrites metrics.csv", _resume_more_epochs, "No space left on device: $TMP/runs/base/metrics.csv", fault="metrics-disk-full"),
    Case("outputs", "disk full writing an export", _previous_export, "cannot write", fault="export-disk-full"),
    # run folders
    Case("run folders", "folder held by another process", _lock_run, "is in use by process 4242"),
    Case("run folders", "rerun after a death before the first checkpoint", _stale_metrics, "", status=0, check=_metrics_clean, keeps_files=False),
    # sweeps
    Case("sweeps", "a member fails", _sweep_with_failing_member, "1 run(s) of the sweep failed", check=_failure_recorded),
    Case("sweeps", "command line replaces a member's own setting", _sweep_override_conflict, "sweep run 'random-init' sets optim.epochs=0 itself", check=_nothing_at("runs", "s")),
    Case("sweeps", "unknown sweep", lambda c: ["sweep", "no-such-sweep"], "unknown preset 'no-such-sweep'"),
    Case("sweeps", "sweep file without runs", lambda c: ["sweep", str(_write(c, "empty-sweep.yaml", b"name: e\nruns: []\n"))], "lists no runs"),
]  # fmt: skip


def case_by_id(case_id: str) -> Case:
    return next(c for c in CASES if c.id == case_id)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root with its bytes (lock files aside)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def leftovers(root: Path) -> list[str]:
    """Temporary files a write left behind."""
    return [str(p) for p in root.rglob("*") if p.name.endswith(".tmp")]


# -- signals: real subprocesses ------------------------------------------------------------------
def cli_process(args: list[str], **kwargs) -> subprocess.Popen:
    """`equissl` as a child process (stderr piped), in its own process group."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "equissl.app.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the run ended ({process.returncode}) before {path} appeared")
        if time.monotonic() > end:
            process.kill()
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.05)


LONG = ["data.limit=640", "optim.epochs=6"]  # 20 steps an epoch: a signal lands mid-run


def signal_run(tmp: Path, signum: int, name: str) -> tuple[int, str, Path]:
    """Start a tiny run, send `signum` once its first checkpoint exists; returns (exit status,
    stderr, run folder)."""
    run = tmp / "runs" / name
    process = cli_process(tiny(tmp, *LONG, name=name))
    wait_for(run / "last.ckpt", process)
    process.send_signal(signum)
    _, err = process.communicate(timeout=300)
    return process.returncode, err, run


def catches(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler for `signum` (Linux: SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) >> (signum - 1) & 1)


def signal_before_training(tmp: Path) -> tuple[int, str]:
    """SIGTERM while the command starts up (no run yet): stops with one line."""
    process = cli_process(tiny(tmp, name="early"))
    end = time.monotonic() + 60
    while not catches(process.pid, signal.SIGTERM) and time.monotonic() < end:
        time.sleep(0.01)  # until equissl has taken over the signal, early in start-up
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    return process.returncode, err


def step_losses(run: Path) -> dict[int, float]:
    with open(run / "metrics.csv", newline="") as f:
        return {
            int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(f) if r["train/loss"]
        }
