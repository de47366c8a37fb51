"""What the benchmark scripts share: timing options, device set-up, the provenance line."""

from __future__ import annotations

import argparse
import platform

import torch

from equissl.app.bench import commit, sync

__all__ = ["add_timing_options", "provenance", "set_up", "sync"]


def add_timing_options(p: argparse.ArgumentParser, batch: int, steps: int, warmup: int) -> None:
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--warmup", type=int, default=warmup)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def set_up(args: argparse.Namespace) -> torch.device:
    """Apply --threads and return the device."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return torch.device(args.device)


def provenance(args: argparse.Namespace, device: torch.device, what: str) -> str:
    """One comment line: machine, torch, threads, device, what is measured, batch, commit."""
    return (
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, device {device}, {what}, batch {args.batch}, "
        f"{args.size}px, commit {commit()}"
    )
