"""The GPU speed protocol: epoch time and linear-probe accuracy along a full-scale E-SimCLR run.

Preset `cifar10-gpu-speed` (ResNet-18 width 64, CIFAR-10, batch 512, bf16, channels_last, data
resident on the GPU) with a method preset (`--method esimclr`). One call of this script:

1. trains for at most `--budget` seconds, stopping at an epoch end (`last.ckpt` is written at
   every epoch end; the next call resumes from it, `resume=auto`); each epoch's time goes to
   `epochs.csv` in the run folder, and at each `--snapshots` epoch the weights are kept as
   `epoch-NNNN.ckpt`;
2. probes the snapshots not probed yet, while the budget lasts (`equissl eval`: linear probe,
   3 seeds, and kNN on frozen features; `eval-epoch-NNNN.json`);
3. writes the summary, `speed-gpu.json` and `speed-gpu.md`, into the run folder and `--out`.

Call it again until the summary says the schedule is done. The learning rate follows one
schedule of `--epochs` epochs throughout (its cosine length never changes between calls), so a
snapshot before the last epoch is an unfinished schedule, not a shorter run; for a dedicated
shorter schedule pass `--epochs 100` (a run of its own name).

Here, once (copies the data and OmegaConf, the one dependency the GPU image lacks, into folders
git ignores, which the device tool carries):
    .venv/bin/python benchmarks/speed_gpu.py --prepare
There (the device tool, carry ["data", ".cache/gpu-site"]):
    PYTHONPATH=src:.cache/gpu-site python3 benchmarks/speed_gpu.py --commit <sha> --out $OUT
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402

from equissl.app.bench import commit, device_name, sync  # noqa: E402
from equissl.app.config import build_config  # noqa: E402
from equissl.app.runner import evaluate_checkpoint, method_label, pretrain, run_dir_of  # noqa: E402
from equissl.app.train import resolve_precision  # noqa: E402
from equissl.reports.atomic import write_text_atomic  # noqa: E402

PROTOCOL = "cifar10-gpu-speed"
SITE = ROOT / ".cache" / "gpu-site"
FIELDS = ("epoch", "train_seconds", "wall_seconds", "images_per_s", "finished")
THRESHOLDS = (85.0, 90.0)
FIRST_EVAL_ESTIMATE = 150.0  # seconds a probe is assumed to take before one was timed


# -- the per-epoch record ----------------------------------------------------------------------
def read_epochs(run_dir: Path) -> list[dict]:
    path = run_dir / "epochs.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_epochs(run_dir: Path, rows: list[dict]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(run_dir / "epochs.csv", out.getvalue())


class SpeedRecorder(Callback):
    """Times every epoch (training steps alone, and wall time with the checkpoint write), keeps
    snapshot weights, and stops at the epoch end after which another epoch would not fit."""

    def __init__(self, run_dir: Path, snapshots: list[int], stop_at: float) -> None:
        self.run_dir, self.snapshots, self.stop_at = run_dir, set(snapshots), stop_at
        self.rows: list[dict] = []

    def on_train_start(self, trainer, module) -> None:
        # A resumed run redoes the epochs after its checkpoint: their rows go.
        done = trainer.current_epoch
        self.rows = [r for r in read_epochs(self.run_dir) if int(r["epoch"]) <= done]

    def on_train_epoch_start(self, trainer, module) -> None:
        sync(module.device)
        self.t0 = self.t_steps = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if batch_idx == module.steps_per_epoch() - 1:
            sync(module.device)
            self.t_steps = time.perf_counter()

    def on_train_epoch_end(self, trainer, module) -> None:
        sync(module.device)  # after LastCheckpoint (earlier in the list) wrote last.ckpt
        now = time.perf_counter()
        epoch, steps = trainer.current_epoch + 1, module.steps_per_epoch()
        seconds = self.t_steps - self.t0
        row = {
            "epoch": epoch,
            "train_seconds": f"{seconds:.3f}",
            "wall_seconds": f"{now - self.t0:.3f}",
            "images_per_s": f"{steps * module.cfg.optim.batch_size / seconds:.0f}",
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if epoch in self.snapshots:
            path = self.run_dir / f"epoch-{epoch:04d}.ckpt"
            tmp = path.with_name(f".{path.name}.tmp")
            trainer.save_checkpoint(tmp, weights_only=True)
            if trainer.is_global_zero:
                os.replace(tmp, path)
        if trainer.is_global_zero:
            self.rows.append(row)
            write_epochs(self.run_dir, self.rows)
            print(
                f"epoch {epoch}: {seconds:.2f} s training, {now - self.t0:.2f} s wall, "
                f"{row['images_per_s']} images/s",
                flush=True,
            )
        if time.monotonic() + 1.2 * (now - self.t0) > self.stop_at:
            trainer.should_stop = True


# -- probing snapshots and the summary ---------------------------------------------------------
def probe_snapshots(cfg, run_dir: Path, snapshots: list[int], deadline: float) -> None:
    """`equissl eval` of each snapshot not probed yet, while a probe still fits the budget."""
    timings = [
        json.loads(p.read_text()).get("eval_seconds", 0) for p in run_dir.glob("eval-epoch-*.json")
    ]
    estimate = 1.3 * max(timings) if timings else FIRST_EVAL_ESTIMATE
    for epoch in snapshots:
        ckpt, out = run_dir / f"epoch-{epoch:04d}.ckpt", f"eval-epoch-{epoch:04d}.json"
        if not ckpt.is_file() or (run_dir / out).is_file():
            continue
        if time.monotonic() + estimate > deadline:
            print(f"probe of epoch {epoch} left for the next call (budget)", flush=True)
            return
        t0 = time.monotonic()
        result = evaluate_checkpoint(cfg, ckpt, out)
        estimate = 1.3 * (time.monotonic() - t0)
        print(f"epoch {epoch}: linear {result['linear_acc']:.2f} %, kNN {result['knn_acc']:.2f} %")


def summarise(cfg, run_dir: Path, snapshots: list[int], args) -> dict:
    rows = read_epochs(run_dir)
    train = [float(r["train_seconds"]) for r in rows]
    wall = [float(r["wall_seconds"]) for r in rows]
    elapsed = {int(r["epoch"]): sum(wall[: i + 1]) for i, r in enumerate(rows)}
    probes = []
    for epoch in snapshots:
        path = run_dir / f"eval-epoch-{epoch:04d}.json"
        if path.is_file():
            r = json.loads(path.read_text())
            probes.append(
                {
                    "epoch": epoch,
                    "linear_acc": r["linear_acc"],
                    "linear_std": r.get("linear_std"),
                    "knn_acc": r["knn_acc"],
                    "transform_acc": r.get("transform_acc"),
                    "training_seconds": elapsed.get(epoch),
                }
            )
    reached = {}
    for threshold in THRESHOLDS:
        first = next((p for p in probes if p["linear_acc"] >= threshold), None)
        reached[f"{threshold:.0f}"] = (
            None
            if first is None
            else {"epoch": first["epoch"], "seconds": first["training_seconds"]}
        )
    return {
        "protocol": PROTOCOL,
        "method": method_label(cfg),
        "schedule_epochs": cfg.optim.epochs,
        "epochs_done": len(rows),
        "batch": cfg.optim.batch_size,
        "device": device_name(torch.device("cuda" if torch.cuda.is_available() else "cpu")),
        "torch": torch.__version__,
        "precision": resolve_precision(cfg),
        "channels_last": bool(cfg.trainer.channels_last) and torch.cuda.is_available(),
        "compile": bool(cfg.trainer.compile),
        "commit": args.commit or commit(),
        "command": " ".join(["python3", "benchmarks/speed_gpu.py", *sys.argv[1:]]),
        "median_epoch_train_seconds": statistics.median(train) if train else None,
        "median_epoch_wall_seconds": statistics.median(wall) if wall else None,
        "first_epoch_wall_seconds": wall[0] if wall else None,
        "median_images_per_s": statistics.median(float(r["images_per_s"]) for r in rows)
        if rows
        else None,
        "training_seconds": sum(wall),
        "probes": probes,
        "time_to_linear_acc": reached,
    }


def _fmt(value, spec: str = ".1f") -> str:
    return "—" if value is None else format(value, spec)


def markdown(summary: dict) -> str:
    s = summary
    lines = [
        f"# {PROTOCOL}: {s['method']}, batch {s['batch']}, {s['schedule_epochs']}-epoch schedule",
        "",
        f"- device: {s['device']}; torch {s['torch']}; {s['precision']}; channels_last "
        f"{s['channels_last']}; compile {s['compile']}; commit {s['commit']}",
        f"- command: `{s['command']}`",
        f"- epochs done: {s['epochs_done']} of {s['schedule_epochs']}; training time "
        f"{_fmt(s['training_seconds'] / 60)} min",
        f"- epoch time (median): {_fmt(s['median_epoch_train_seconds'], '.2f')} s of steps, "
        f"{_fmt(s['median_epoch_wall_seconds'], '.2f')} s wall (with the checkpoint); "
        f"first epoch {_fmt(s['first_epoch_wall_seconds'], '.2f')} s; "
        f"{_fmt(s['median_images_per_s'], '.0f')} images/s",
        "",
        "| epoch | linear probe (%) | kNN (%) | rotation head (%) | training time (min) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for p in s["probes"]:
        minutes = None if p["training_seconds"] is None else p["training_seconds"] / 60
        lines.append(
            f"| {p['epoch']} | {p['linear_acc']:.2f} ± {_fmt(p['linear_std'], '.2f')} | "
            f"{p['knn_acc']:.2f} | {_fmt(p['transform_acc'], '.2f')} | {_fmt(minutes)} |"
        )
    lines.append("")
    for threshold, hit in s["time_to_linear_acc"].items():
        where = (
            "not reached by the probed epochs"
            if hit is None
            else (
                f"epoch {hit['epoch']}, {_fmt(hit['seconds'] / 60 if hit['seconds'] else None)} min"
            )
        )
        lines.append(f"- first probe at >= {threshold} % linear: {where}")
    return "\n".join(lines) + "\n"


# -- set-up on the machine with the data ------------------------------------------------------
# Pure-Python dependencies a bare GPU image may lack (OmegaConf and its parser runtime; the
# streaming reader's webdataset and braceexpand), copied when installed here.
PURE_PYTHON = ("omegaconf", "antlr4", "webdataset", "braceexpand")


def prepare(args) -> None:
    """Copy the data and the pure-Python dependencies into git-ignored folders that the device
    tool carries."""
    import importlib

    data = ROOT / args.data
    data.parent.mkdir(parents=True, exist_ok=True)
    if not data.is_file() or data.stat().st_size != Path(args.source).stat().st_size:
        shutil.copyfile(args.source, data)
    copied = []
    for name in PURE_PYTHON:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        source = Path(module.__file__)
        shutil.rmtree(SITE / name, ignore_errors=True)
        SITE.mkdir(parents=True, exist_ok=True)
        if source.name == "__init__.py":
            shutil.copytree(
                source.parent, SITE / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copyfile(source, SITE / source.name)
        copied.append(name)
    print(
        f"copied {args.source} -> {data.relative_to(ROOT)} and {', '.join(copied)} -> "
        f"{SITE.relative_to(ROOT)}"
    )
    print('device tool: carry ["data", ".cache/gpu-site"], command:')
    print(
        f"  PYTHONPATH=src:.cache/gpu-site python3 benchmarks/speed_gpu.py --commit {commit()} --out $OUT"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", help="extra key=value settings")
    p.add_argument("--prepare", action="store_true", help="copy data and OmegaConf, then stop")
    p.add_argument("--source", default=str(ROOT.parent / "shared/data/cifar10-jpeg.zip"))
    p.add_argument("--data", default="data/cifar10-jpeg.zip", help="relative to the repo root")
    p.add_argument("--method", default="esimclr")
    p.add_argument("--epochs", type=int, default=800, help="length of the lr schedule")
    p.add_argument("--snapshots", default="50,100,200,400,800", help="epochs to probe")
    p.add_argument("--budget", type=float, default=540, help="seconds this call may take")
    p.add_argument("--name", default="", help="run name (default: METHOD-gpu-speed-eEPOCHS)")
    p.add_argument("--runs", default="runs", help="folder of run folders")
    p.add_argument("--compile", action="store_true", help="trainer.compile=true")
    p.add_argument("--commit", default="", help="commit of the tree (no git on the device)")
    p.add_argument("--out", default="", help="also copy the summary here (e.g. $OUT)")
    args = p.parse_args()
    if args.prepare:
        prepare(args)
        return
    deadline = time.monotonic() + args.budget
    name = args.name or f"{args.method}-gpu-speed-e{args.epochs}"
    cfg = build_config(
        [args.method, PROTOCOL],
        [
            f"data.path={ROOT / args.data}",
            f"name={name}",
            f"out_dir={args.runs}",
            f"optim.epochs={args.epochs}",
            "eval.at_end=false",
            *(["trainer.compile=true"] if args.compile else []),
            *args.overrides,
        ],
    )
    run_dir = run_dir_of(cfg)
    snapshots = sorted({int(e) for e in args.snapshots.split(",") if int(e) < args.epochs})
    snapshots.append(args.epochs)
    if len(read_epochs(run_dir)) < args.epochs:
        # keep time for one probe when a snapshot is waiting or due this call
        stop_at = deadline - FIRST_EVAL_ESTIMATE / 2
        pretrain(cfg, callbacks=[SpeedRecorder(run_dir, snapshots, stop_at)])
    probe_snapshots(cfg, run_dir, snapshots, deadline)
    summary = summarise(cfg, run_dir, snapshots, args)
    text = markdown(summary)
    print(text)
    for folder in [run_dir, *([Path(args.out)] if args.out else [])]:
        write_text_atomic(folder / "speed-gpu.json", json.dumps(summary, indent=2) + "\n")
        write_text_atomic(folder / "speed-gpu.md", text)
        if folder != run_dir and (run_dir / "epochs.csv").is_file():
            shutil.copyfile(run_dir / "epochs.csv", folder / "epochs.csv")


if __name__ == "__main__":
    main()
