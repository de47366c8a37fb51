"""`trainer.cpu_allocator=reuse` against `system` on the CPU: `equissl bench` rows of each
method, the two settings alternating in fresh processes (A B A B ...), median and spread.

    .venv/bin/python benchmarks/cpu_allocator.py --out docs/results/cpu-allocator.json
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
MODES = ("system", "reuse")
FIELDS = ("step_img_s", "bare_img_s", "step_over_bare")


def bench(method: str, mode: str, args: argparse.Namespace) -> dict:
    """One `equissl bench` row in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "row.json"
        command = [sys.executable, "-m", "equissl", "bench", method, "cifar10-cpu",
                   f"backbone.width={args.width}", f"optim.batch_size={args.batch}",
                   f"trainer.cpu_allocator={mode}", f"steps={args.steps}",
                   f"warmup={args.warmup}", f"out={out}"]  # fmt: skip
        subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
        return json.loads(out.read_text())["rows"][0]


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3g} ({min(values):.3g}-{max(values):.3g})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="simclr,esimclr,care")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="")
    args = p.parse_args()
    rows = {(m, mode): [] for m in args.methods.split(",") for mode in MODES}
    for repeat in range(args.repeats):
        for method in args.methods.split(","):
            order = MODES if repeat % 2 == 0 else MODES[::-1]
            for mode in order:
                rows[method, mode].append(bench(method, mode, args))
                print(f"repeat {repeat + 1} {method} {mode}: "
                      f"{rows[method, mode][-1]['step_img_s']:.1f} img/s", flush=True)  # fmt: skip
    print("| method | allocator | step img/s | bare img/s | step/bare | reuse / system |")
    print("|---|---|---:|---:|---:|---:|")
    for method in args.methods.split(","):
        base = statistics.median(r["step_img_s"] for r in rows[method, "system"])
        for mode in MODES:
            got = rows[method, mode]
            cells = [summary([r[f] for r in got]) for f in FIELDS]
            ratio = statistics.median(r["step_img_s"] for r in got) / base
            print(f"| {method} | {mode} | " + " | ".join(cells) + f" | {ratio:.2f}x |")
    if args.out:
        raw = {f"{m}/{mode}": r for (m, mode), r in rows.items()}
        Path(args.out).write_text(json.dumps({"args": vars(args), "rows": raw}, indent=2) + "\n")


if __name__ == "__main__":
    main()
