"""The `cifar10-cpu-25min` protocol: E-SimCLR and SimCLR, each run all-in (decoding the JPEG zip
into a fresh cache, pretraining, evaluation) under 25 minutes of wall time on 2 CPU cores.

Runs alternate between the methods (E-SimCLR s0, SimCLR s0, E-SimCLR s1, ...), one fresh
`equissl pretrain` process each; the wall time is the whole command's. Results go to a JSON
file after every run (a later call with the same --out skips the runs it holds) and the table
to stdout.

    .venv/bin/python benchmarks/cpu_25min.py --seeds 0 1 --out docs/results/cifar10-cpu-25min.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZIP = ROOT.parent / "shared" / "data" / "cifar10-jpeg.zip"
# E-SimCLR's step is ~1.6x SimCLR's (its 4N rotation crops): each gets the epochs that fill the
# budget at its own speed (configs/protocols/cifar10-cpu-25min.yaml).
EPOCHS = {"esimclr": 10, "simclr": 15}
FIELDS = ("linear_acc", "knn_acc", "transform_acc", "train_seconds", "eval_seconds")
BUDGET_S = 25 * 60


def run(method: str, seed: int, args: argparse.Namespace) -> dict:
    """One all-in run in a fresh process, its decode cache emptied first."""
    name = f"{method}-s{seed}"
    cache = ROOT / ".cache" / "cpu-25min" / name
    shutil.rmtree(cache, ignore_errors=True)
    out_dir = ROOT / "runs" / "cifar10-cpu-25min"
    shutil.rmtree(out_dir / name, ignore_errors=True)
    command = [sys.executable, "-m", "equissl", "pretrain", method, "cifar10-cpu-25min",
               f"optim.epochs={args.epochs.get(method, EPOCHS[method])}",
               "data.name=imagefolder", f"data.path={args.zip}", f"data.cache_dir={cache}",
               f"seed={seed}", f"name={name}", f"out_dir={out_dir}", "trainer.progress_bar=false",
               *args.extra]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (out_dir / f"{name}.log").parent.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    results = json.loads((out_dir / name / "results.json").read_text())
    row = {"method": method, "seed": seed, "wall_seconds": wall, "command": " ".join(command)}
    return row | {k: results.get(k) for k in FIELDS}


def table(rows: list[dict]) -> str:
    lines = [
        "| method | seed | linear % | kNN % | rotation head % | train s | eval s | all-in |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        head = "—" if r["transform_acc"] is None else f"{r['transform_acc']:.2f}"
        lines.append(
            f"| {r['method']} | {r['seed']} | {r['linear_acc']:.2f} | {r['knn_acc']:.2f} | {head} "
            f"| {r['train_seconds']:.0f} | {r['eval_seconds']:.0f} | "
            f"{r['wall_seconds'] / 60:.1f} min |"
        )
    for method in dict.fromkeys(r["method"] for r in rows):
        accs = [r["linear_acc"] for r in rows if r["method"] == method]
        spread = f" ± {statistics.stdev(accs):.2f}" if len(accs) > 1 else ""
        lines.append(
            f"| **{method}, mean** | | **{statistics.mean(accs):.2f}{spread}** | | | | | |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", default=["esimclr", "simclr"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--zip", type=Path, default=ZIP)
    p.add_argument("--epochs", type=json.loads, default={}, help='e.g. {"simclr": 12}')
    p.add_argument("--extra", nargs="*", default=[], help="more key=value overrides")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    rows = json.loads(args.out.read_text())["rows"] if args.out.exists() else []
    for seed in args.seeds:
        for method in args.methods:
            if any(r["method"] == method and r["seed"] == seed for r in rows):
                continue
            rows.append(run(method, seed, args))
            r = rows[-1]
            over = " OVER BUDGET" if r["wall_seconds"] > BUDGET_S else ""
            print(f"{method} seed {seed}: {r['linear_acc']:.2f} % linear, "
                  f"{r['wall_seconds'] / 60:.1f} min all-in{over}", flush=True)  # fmt: skip
            args.out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
