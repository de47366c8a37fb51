"""Pretraining throughput: full training step vs a bare backbone forward+backward on the same views.

The full step is what `equissl pretrain` runs (gather a uint8 batch, augment on the device,
backbone, heads, losses, backward, optimizer step). The bare step is only the backbone's
forward and backward over tensors of exactly the same shapes (all views). Their ratio is the
overhead of everything that is not the backbone; the goal on CPU is at most 1.10. The
measurement is `equissl bench` (src/equissl/app/bench.py), run here for several methods at once.

    .venv/bin/python benchmarks/throughput.py --methods simclr esimclr --width 16 --batch 256
"""

from __future__ import annotations

import argparse

from common import add_timing_options, set_up
from equissl.app.bench import bench_table, measure
from equissl.app.config import build_config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", default=["simclr", "esimclr"])
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--group", default="c4", help="for an eqresnet backbone: c4 | d4")
    p.add_argument("--width", type=int, default=16)
    add_timing_options(p, batch=256, steps=10, warmup=2)
    args = p.parse_args()
    device = set_up(args)
    overrides = [
        f"backbone.width={args.width}",
        f"backbone.name={args.backbone}",
        f"group={args.group}",
        f"optim.batch_size={args.batch}",
        f"trainer.accelerator={'cpu' if device.type == 'cpu' else 'gpu'}",
    ]
    rows = [
        measure(
            build_config([preset], overrides), steps=args.steps, warmup=args.warmup, size=args.size
        )
        for preset in args.methods
    ]
    print(bench_table(rows))


if __name__ == "__main__":
    main()
