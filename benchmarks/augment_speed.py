"""Time the augmentation pipelines: ``.venv/bin/python benchmarks/augment_speed.py [--backbone]``.

Prints the best and median wall time per call for random uint8 batches on CPU (or ``--device``),
for each thread count; ``--backbone`` adds a ResNet-18 forward+backward on the same views, the
cost the augmentation has to stay well below.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import torch

from equissl.augment.pipelines import PIPELINES, build_augment


def time_call(fn: Callable[[], object], reps: int, device: torch.device) -> tuple[float, float]:
    """Best and median wall time of ``fn()`` in milliseconds, after two warm-up calls."""
    times = []
    for i in range(reps + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return min(times) * 1e3, statistics.median(times) * 1e3


def _backbone_step(views: torch.Tensor, width: int) -> Callable[[], None]:
    from equissl.models import build_backbone  # only needed for --backbone

    model = build_backbone("resnet18", width=width, in_channels=views.shape[1]).to(views.device)
    return lambda: model(views).sum().backward()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", nargs="+", default=["simclr"], choices=PIPELINES)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--in-size", type=int, default=32)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 16])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbone", action="store_true", help="also time a ResNet-18 step")
    parser.add_argument("--width", type=int, default=16, help="ResNet-18 width for --backbone")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    shape = (args.batch, args.channels, args.in_size, args.in_size)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, device=device)
    for threads in args.threads:
        torch.set_num_threads(threads)
        for size in args.sizes:
            for name in args.names:
                generator = torch.Generator(device=device).manual_seed(0)
                call = functools.partial(build_augment(name, size), images, generator)
                best, median = time_call(call, args.reps, device)
                print(
                    f"{name:8s} {tuple(shape)} -> {size:3d}  threads={threads}: "
                    f"best {best:7.2f} ms  median {median:7.2f} ms"
                )
            if args.backbone:
                views = call()
                step = _backbone_step(views, args.width)
                best, median = time_call(step, max(3, args.reps // 10), device)
                print(
                    f"resnet18 width {args.width} fwd+bwd on {tuple(views.shape)}  "
                    f"threads={threads}: best {best:7.1f} ms  median {median:7.1f} ms"
                )


if __name__ == "__main__":
    main()
