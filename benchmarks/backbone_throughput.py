"""Backbone forward+backward throughput: ResNet-18 vs EqResNet-18 (C4, D4) at a matched
parameter count (`--widths`: the ResNet width each EqResNet matches).

Times, interleaved across the backbones so load changes hit all alike, a forward and a
backward of a batch of random images (training mode), and prints a Markdown table.

    .venv/bin/python benchmarks/backbone_throughput.py --widths 16 64 --batch 128
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import add_timing_options, provenance, set_up, sync
from equissl.models import build_backbone


def backbones(width: int) -> dict[str, torch.nn.Module]:
    return {
        "ResNet-18": build_backbone("resnet18", width=width),
        "EqResNet-18 C4": build_backbone("eqresnet18", group="c4", width=width),
        "EqResNet-18 D4": build_backbone("eqresnet18", group="d4", width=width),
    }


def measure(width: int, args: argparse.Namespace, device: torch.device) -> list[dict]:
    torch.manual_seed(0)
    nets = {k: v.to(device).train() for k, v in backbones(width).items()}
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    times: dict[str, list[float]] = {k: [] for k in nets}
    for i in range(args.warmup + args.steps):
        for name, net in nets.items():
            sync(device)
            t0 = time.perf_counter()
            net(x).sum().backward()
            sync(device)
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t0)
            net.zero_grad(set_to_none=True)
    rows = []
    base = statistics.median(times["ResNet-18"])
    for name, net in nets.items():
        med = statistics.median(times[name])
        rows.append(
            {
                "backbone": name,
                "width": width,
                "params": sum(p.numel() for p in net.parameters()),
                "features": net.num_features,
                "img_per_s": args.batch / med,
                "ms": 1e3 * med,
                "slowdown": med / base,
            }
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", type=int, nargs="+", default=[16, 64])
    add_timing_options(p, batch=128, steps=5, warmup=1)
    args = p.parse_args()
    device = set_up(args)
    print(provenance(args, device, "training-mode forward+backward"))
    print(
        "| backbone | matched width | parameters | features | images/s | fwd+bwd ms | time vs ResNet-18 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for width in args.widths:
        for r in measure(width, args, device):
            print(
                f"| {r['backbone']} | {r['width']} | {r['params']:,} | {r['features']} | "
                f"{r['img_per_s']:.0f} | {r['ms']:.0f} | {r['slowdown']:.2f}x |"
            )


if __name__ == "__main__":
    main()
