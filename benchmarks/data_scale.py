"""Data at scale: peak memory of streamed pretraining as the set grows, and the training
throughput of streaming against the resident set on the same data.

1. Synthetic ImageFolders of 10k, 40k and 160k training JPEGs (96-128 px sides, 100 classes,
   plus 1000 val images; the smaller sets are hard links into the largest) are generated into
   the git-ignored .cache/data-scale/, then written as shards (`equissl data prepare`), timed.
2. Peak memory: E-SimCLR pretraining streamed from each set for a few steps (and resident on
   the two smaller ones, for contrast), in a child process whose process tree (the trainer and
   its DataLoader workers) is sampled for its proportional set size (PSS) every 100 ms.
3. Throughput: resident (data.stream=false) and streamed (data.stream=true) runs alternate,
   `--repeats` times each, on the same shard folder: the real CIFAR-10 JPEGs at 32 px and the
   10k synthetic set at 96 px; images/s over the steps after `--warmup`, median and spread.

    PYTHONPATH=src .venv/bin/python benchmarks/data_scale.py --out docs/results/data-scale

Every run is a child `equissl pretrain` (through equissl.app.runner.pretrain, stopped after
`--steps` steps by a callback), so memory is measured per run from a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "data-scale"
CIFAR = ROOT.parent / "shared" / "data" / "cifar10-jpeg.zip"
SIZES = (10_000, 40_000, 160_000)
CLASSES, VAL, DISTINCT = 100, 1000, 4000
COMMON = [  # a small E-SimCLR: quick steps, every crop (two views and the rotation crops)
    "trainer.accelerator=cpu", "trainer.progress_bar=false", "trainer.log_every_n_steps=50",
    "eval.at_end=false", "data.name=imagefolder", "data.limit=null", "optim.warmup_epochs=0",
]  # fmt: skip


# -- synthetic folders ---------------------------------------------------------------------------
def _encoded(rng: np.random.Generator) -> bytes:
    """A smooth random JPEG (low-frequency colour field plus a bright square), 96-128 px sides."""
    from io import BytesIO

    from PIL import Image

    h, w = (int(v) for v in rng.integers(96, 129, 2))
    field = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((w, h))
    pixels = np.asarray(field).copy()
    top, left, side = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2)), h // 3
    pixels[top : top + side, left : left + side] = rng.integers(128, 256, 3)
    out = BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def make_folders() -> dict[int, Path]:
    """The synthetic folders (generated once): train/<class>/<i>.jpg and val/<class>/<i>.jpg."""
    rng = np.random.default_rng(0)
    folders = {n: CACHE / f"synthetic-{n // 1000}k" for n in SIZES}
    if all((f / ".complete").is_file() for f in folders.values()):
        return folders
    pool = [_encoded(rng) for _ in range(DISTINCT)]
    big = folders[max(SIZES)]
    for split, count in (("train", max(SIZES)), ("val", VAL)):
        for i in range(count):
            path = big / split / f"c{i % CLASSES:03d}" / f"{i:06d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                path.write_bytes(pool[int(rng.integers(DISTINCT))])
    for n, folder in folders.items():
        if folder == big:
            continue
        for split, count in (("train", n), ("val", VAL)):
            for i in range(count):
                rel = Path(split) / f"c{i % CLASSES:03d}" / f"{i:06d}.jpg"
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                if not (folder / rel).exists():
                    os.link(big / rel, folder / rel)
    for folder in folders.values():
        (folder / ".complete").touch()
    return folders


def prepare(source: Path, out: Path) -> float:
    """`equissl data prepare` of `source` into `out`; seconds (0 when already prepared)."""
    if (out / "manifest.json").is_file():
        return 0.0
    from equissl.data.shards import prepare_shards

    t0 = time.perf_counter()
    prepare_shards(source, out, shard_size=1000)
    return time.perf_counter() - t0


# -- one run in a child process --------------------------------------------------------------------
def child(spec: dict) -> None:
    """Run `spec`'s pretraining for spec['steps'] steps; print the step end times as JSON."""
    import lightning as L

    from equissl.app.config import build_config
    from equissl.app.runner import pretrain

    times: list[float] = []

    class Timer(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            times.append(time.perf_counter())
            if len(times) >= spec["steps"]:
                trainer.should_stop = True

    cfg = build_config(spec["presets"], spec["overrides"])
    pretrain(cfg, callbacks=[Timer()])
    print("TIMES " + json.dumps(times), flush=True)


def _tree_pss(pid: int) -> int:
    """Proportional set size (bytes) of `pid` and its descendants: their resident memory, each
    page shared by k of them (the forked workers share the trainer's) counted 1/k in each."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def run(presets: list[str], overrides: list[str], steps: int, warmup: int, batch: int) -> dict:
    """One child run: peak tree RSS (GB), images/s after `warmup` steps, wall seconds."""
    spec = {"presets": presets, "overrides": overrides, "steps": steps}
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    peak = [0]

    def poll() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], _tree_pss(process.pid))
            time.sleep(0.1)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out, err = process.communicate()
    watcher.join()
    if process.returncode != 0:
        raise RuntimeError(f"run failed ({process.returncode}): {err[-2000:]}")
    times = json.loads(next(x for x in out.splitlines() if x.startswith("TIMES "))[6:])
    rate = batch * (len(times) - warmup) / (times[-1] - times[warmup - 1])
    said = [x for x in out.splitlines() if x.startswith("data: ")]
    return {
        "peak_gb": peak[0] / 2**30,
        "images_per_s": rate,
        "wall_s": time.perf_counter() - t0,
        "said": said[0] if said else "",
    }


# -- the measurements ------------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, default=1, help="data.workers of the throughput runs")
    p.add_argument("--memory-workers", type=int, default=2, help="data.workers, memory runs")
    p.add_argument("--threads", type=int, default=2, help="trainer.threads of every run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", default="docs/results/data-scale", help="stem of the .md and .csv")
    p.add_argument("--only", choices=("all", "memory", "throughput"), default="all")
    args = p.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    sys.path.insert(0, str(ROOT / "src"))
    from equissl.app.bench import commit

    started = time.perf_counter()
    shutil.rmtree(CACHE / "runs", ignore_errors=True)  # every run starts afresh
    threads = f"trainer.threads={args.threads}"
    stream = ["data.stream=true", f"data.workers={args.workers}"]
    os.environ["EQUISSL_CACHE"] = str(CACHE / "decoded")
    t = time.perf_counter()
    folders = make_folders()
    generate_s = time.perf_counter() - t
    shards = {n: CACHE / f"shards-{n // 1000}k" for n in SIZES}
    prepare_s = {n: prepare(folders[n], shards[n]) for n in SIZES}
    cifar = CACHE / "shards-cifar10"
    prepare_s["cifar10"] = prepare(CIFAR, cifar)
    print(f"generated in {generate_s:.0f} s; prepared {prepare_s}", flush=True)

    # Peak memory as the set grows (batch 32, 96 px, ImageNet stem, width 8).
    memory = []
    small = ["backbone.width=8", "backbone.stem=imagenet", "optim.batch_size=32", "data.size=96"]
    small.append(threads)
    for n in SIZES if args.only != "throughput" else ():
        for mode in ("stream", "resident"):
            if mode == "resident" and n == max(SIZES):
                continue  # 4.4 GB decoded and a minute of decoding: the contrast is clear below
            how = ["data.stream=true", f"data.workers={args.memory_workers}"]
            extra = how if mode == "stream" else ["data.stream=false"]
            over = [*COMMON, *small, f"data.path={shards[n]}", *extra, f"out_dir={CACHE / 'runs'}"]
            r = run(["esimclr"], [*over, f"name=mem-{mode}-{n}"], args.steps, args.warmup, 32)
            memory.append({"images": n, "mode": mode, **r})
            print(memory[-1], flush=True)

    # Throughput, resident and streamed alternating on the same shards.
    cases = {
        "CIFAR-10 (real JPEGs), 32 px, ResNet-18 width 8, batch 64": (
            cifar,
            ["data.size=32", "backbone.width=8", "optim.batch_size=64"],
            64,
        ),
        "synthetic 10k, 96 px, ResNet-18 (ImageNet stem) width 8, batch 32": (
            shards[10_000],
            ["data.size=96", "backbone.width=8", "backbone.stem=imagenet", "optim.batch_size=32"],
            32,
        ),
    }
    from equissl.data.shards import read_shards

    read_shards(cifar, size=32)  # the resident runs' decode cache, filled before timing
    speed = []
    for label, (folder, extra, batch) in cases.items() if args.only != "memory" else ():
        rates: dict[str, list[float]] = {"resident": [], "stream": []}
        for r in range(args.repeats):  # alternating, the order swapped every repeat
            for mode in ("resident", "stream") if r % 2 == 0 else ("stream", "resident"):
                how = stream if mode == "stream" else ["data.stream=false"]
                over = [*COMMON, *extra, threads, f"data.path={folder}", *how]
                over += [f"out_dir={CACHE / 'runs'}", f"name=speed-{mode}-{len(speed)}-{r}"]
                result = run(["esimclr"], over, args.steps, args.warmup, batch)
                rates[mode].append(result["images_per_s"])
                print(label, mode, r, result, flush=True)
        speed.append({"case": label, **rates})
    write(args, memory, speed, prepare_s, generate_s, time.perf_counter() - started, commit())


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def write(args, memory, speed, prepare_s, generate_s, total_s, rev) -> None:
    """The Markdown table and CSV of the measurements."""
    stem = ROOT / args.out
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "PYTHONPATH=src .venv/bin/python benchmarks/data_scale.py " + " ".join(
        a for a in sys.argv[1:]
    )
    lines = [
        "# Data at scale: streaming from shards against the resident set",
        "",
        f"Measured {date} at commit {rev} on {platform.machine()} with {os.cpu_count()} CPU "
        f"cores and no GPU, shared with other jobs (torch threads {args.threads}; streamed "
        f"runs: data.workers={args.memory_workers} for memory, {args.workers} for throughput), by",
        "",
        f"    {command.strip()}",
        "",
        f"The whole benchmark took {total_s / 60:.1f} min (generating the folders "
        f"{generate_s:.0f} s). Every run is a fresh process: E-SimCLR (two views and the "
        f"rotation crops), {args.steps} steps, rates over the last {args.steps - args.warmup}.",
        "",
        "## Peak memory as the set grows (96 px crops, ResNet-18 (ImageNet stem) width 8, batch 32)",
        "",
        "Peak memory is the largest proportional set size (PSS: resident memory, a page shared "
        "by k processes counted 1/k in each) of the training process and its DataLoader "
        "workers together, sampled every 100 ms. Shards: `equissl data prepare` of each folder "
        "(1000 images a shard, every image decoded once as a check, one process per core).",
        "",
        "| training images | mode | peak memory (GB) | images/s | run (s) | prepare (s) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for m in memory:
        prep = prepare_s.get(m["images"], 0.0) if m["mode"] == "stream" else 0.0
        prep_text = f"{prep:.0f}" if prep else "—"
        lines.append(
            f"| {m['images']:,} | {m['mode']} | {m['peak_gb']:.2f} | {m['images_per_s']:.1f} | "
            f"{m['wall_s']:.0f} | {prep_text} |"
        )
    lines += [
        "",
        "## Throughput, resident against streamed (images/s, median (min-max) of "
        f"{args.repeats} alternating runs)",
        "",
        "| data and model | resident | streamed | resident / streamed |",
        "|---|---:|---:|---:|",
    ]
    for s in speed:
        ratio = statistics.median(s["resident"]) / statistics.median(s["stream"])
        lines.append(
            f"| {s['case']} | {_spread(s['resident'])} | {_spread(s['stream'])} | {ratio:.2f} |"
        )
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    rows = ["kind,case,mode,value"]
    rows += [f"memory_gb,{m['images']},{m['mode']},{m['peak_gb']:.4f}" for m in memory]
    for s in speed:
        for mode in ("resident", "stream"):
            rows += [f'images_per_s,"{s["case"]}",{mode},{v:.3f}' for v in s[mode]]
    stem.with_suffix(".csv").write_text("\n".join(rows) + "\n")
    print(f"wrote {stem}.md and {stem}.csv")


if __name__ == "__main__":
    main()
