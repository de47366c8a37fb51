"""One setting's values against each other on the CPU: `equissl bench` rows of each method, the
values alternating in fresh processes (A B A B ..., the order swapped every repeat), median and
spread. The first value is the baseline of the ratio column.

    .venv/bin/python benchmarks/cpu_setting.py --key trainer.channels_last --values false,true \
        --out docs/results/cpu-layout.json
    .venv/bin/python benchmarks/cpu_setting.py --key trainer.cpu_allocator --values system,reuse \
        --out docs/results/cpu-allocator.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIELDS = ("step_img_s", "bare_img_s", "step_over_bare")


def bench(method: str, setting: str, args: argparse.Namespace) -> dict:
    """One `equissl bench` row in a fresh process, with `setting` (key=value) on top."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "row.json"
        command = [sys.executable, "-m", "equissl", "bench", method, "cifar10-cpu",
                   f"backbone.width={args.width}", f"optim.batch_size={args.batch}",
                   *args.extra, setting, f"steps={args.steps}", f"warmup={args.warmup}",
                   f"out={out}"]  # fmt: skip
        subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
        return json.loads(out.read_text())["rows"][0]


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3g} ({min(values):.3g}-{max(values):.3g})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--key", required=True, help="a config key, e.g. trainer.channels_last")
    p.add_argument("--values", required=True, help="comma-separated; the first is the baseline")
    p.add_argument("--methods", default="simclr,esimclr,care")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--extra", nargs="*", default=[], help="more key=value overrides")
    p.add_argument("--out", default="")
    args = p.parse_args()
    methods, values = args.methods.split(","), args.values.split(",")
    rows = {(m, v): [] for m in methods for v in values}
    for repeat in range(args.repeats):
        for method in methods:
            for value in values if repeat % 2 == 0 else values[::-1]:
                rows[method, value].append(bench(method, f"{args.key}={value}", args))
                print(f"repeat {repeat + 1} {method} {value}: "
                      f"{rows[method, value][-1]['step_img_s']:.1f} img/s", flush=True)  # fmt: skip
    print(f"| method | {args.key} | step img/s | bare img/s | step/bare | step, / {values[0]} |")
    print("|---|---|---:|---:|---:|---:|")
    for method in methods:
        base = statistics.median(r["step_img_s"] for r in rows[method, values[0]])
        for value in values:
            got = rows[method, value]
            cells = [summary([r[f] for r in got]) for f in FIELDS]
            ratio = statistics.median(r["step_img_s"] for r in got) / base
            print(f"| {method} | {value} | " + " | ".join(cells) + f" | {ratio:.2f}x |")
    if args.out:
        raw = {f"{m}/{v}": r for (m, v), r in rows.items()}
        Path(args.out).write_text(json.dumps({"args": vars(args), "rows": raw}, indent=2) + "\n")


if __name__ == "__main__":
    main()
