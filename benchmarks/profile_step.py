"""Where a training step's time goes: `torch.profiler` over a few steps of `equissl bench`'s step.

The step is the one `equissl bench` times (same method, data and optimiser); the table lists
the operators by their own CPU time, summed over the profiled steps.

    .venv/bin/python benchmarks/profile_step.py simclr cifar10-cpu --steps 3
"""

from __future__ import annotations

import argparse

from torch.profiler import ProfilerActivity, profile

from equissl.app.bench import bench_device, build_bench_method, image_size, step_functions
from equissl.app.config import build_config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("presets", nargs="+")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rows", type=int, default=25)
    args = p.parse_args()
    cfg = build_config(args.presets, [])
    size = image_size(cfg)
    method, optimizer = build_bench_method(cfg, bench_device(cfg), size)
    fns, _ = step_functions(cfg, method, optimizer, size, args.warmup + args.steps)
    for i in range(args.warmup):
        fns["step"](i)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(args.warmup, args.warmup + args.steps):
            fns["step"](i)
    print(f"# {args.steps} steps of {' '.join(args.presets)}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
