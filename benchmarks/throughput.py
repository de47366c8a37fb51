"""Pretraining throughput: full training step vs a bare backbone forward+backward on the same views.

The full step is what `equissl pretrain` runs (gather a uint8 batch, augment on the device,
backbone, heads, losses, backward, optimizer step). The bare step is only the backbone's
forward and backward over tensors of exactly the same shapes (all views). Their ratio is the
overhead of everything that is not the backbone; the goal on CPU is at most 1.15.

    .venv/bin/python benchmarks/throughput.py --methods simclr esimclr --width 16 --batch 256
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import add_timing_options, provenance, set_up, sync
from equissl.config import build_config
from equissl.methods import Method


def measure(preset: str, args: argparse.Namespace, device: torch.device) -> dict:
    cfg = build_config(
        [preset],
        [f"backbone.width={args.width}", f"backbone.name={args.backbone}", f"group={args.group}"],
    )
    n, size = args.batch, args.size
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n * 4, 3, size, size), dtype=torch.uint8, generator=g).to(
        device
    )
    labels = torch.randint(0, 10, (n * 4,), generator=g).to(device)
    method = Method(
        cfg,
        in_channels=3,
        image_size=size,
        num_classes=10,
        mean=torch.full((3,), 0.5),
        std=torch.full((3,), 0.25),
    ).to(device)
    opt = torch.optim.SGD(method.parameters(), lr=1e-3, momentum=0.9)

    def full_step(i: int) -> None:
        gen = torch.Generator(device=device).manual_seed(i)
        idx = torch.randint(0, images.shape[0], (n,), generator=gen, device=device)
        loss, _ = method.loss(images[idx], labels[idx], gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    gen = torch.Generator(device=device).manual_seed(0)
    views = {k: v for k, v in method.make_views(images[:n], gen).items() if v.dim() == 4}
    normalised = [((v - 0.5) / 0.25).contiguous() for v in views.values()]

    def bare_step(i: int) -> None:
        out = sum(method.backbone(v).sum() for v in normalised)
        opt.zero_grad(set_to_none=True)
        out.backward()

    def augment_only(i: int) -> None:
        gen = torch.Generator(device=device).manual_seed(i)
        idx = torch.randint(0, images.shape[0], (n,), generator=gen, device=device)
        method.make_views(images[idx], gen)

    timings: dict[str, list[float]] = {"full": [], "bare": [], "augment": []}
    steps = {"full": full_step, "bare": bare_step, "augment": augment_only}
    for i in range(args.warmup + args.steps):
        for name, fn in steps.items():  # interleaved, so load changes hit all three alike
            sync(device)
            t0 = time.perf_counter()
            fn(i)
            sync(device)
            if i >= args.warmup:
                timings[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in timings.items()}
    shapes = ", ".join(f"{v.shape[0]}x{v.shape[-1]}px" for v in normalised)
    return {
        "method": preset,
        "views": shapes,
        "img_per_s": n / med["full"],
        "step_ms": 1e3 * med["full"],
        "bare_ms": 1e3 * med["bare"],
        "augment_ms": 1e3 * med["augment"],
        "ratio": med["full"] / med["bare"],
        "augment_speedup": med["full"] / med["augment"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", default=["simclr", "esimclr"])
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--group", default="c4", help="for an eqresnet backbone: c4 | d4")
    p.add_argument("--width", type=int, default=16)
    add_timing_options(p, batch=256, steps=10, warmup=2)
    args = p.parse_args()
    device = set_up(args)
    print(provenance(args, device, f"{args.backbone} width {args.width}"))
    print(
        "| method | views per step | images/s | step ms | bare fwd+bwd ms | augment ms | step/bare | step/augment |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for preset in args.methods:
        r = measure(preset, args, device)
        print(
            f"| {r['method']} | {r['views']} | {r['img_per_s']:.0f} | {r['step_ms']:.0f} | {r['bare_ms']:.0f} | "
            f"{r['augment_ms']:.1f} | {r['ratio']:.3f} | {r['augment_speedup']:.0f}x |"
        )


if __name__ == "__main__":
    main()
