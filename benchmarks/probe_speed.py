"""Linear-probe speed and agreement on cached CIFAR-10 features (50,000 x d train, 10,000 test).

Exports a trained run's backbone, caches its features of the full CIFAR-10 splits once, then
times three probes on that same tensor and compares their test accuracy:

- `lbfgs`: equissl's full-batch L-BFGS probe (eval.linear.solver=lbfgs);
- `adamw`: equissl's default mini-batch probe, 3 seeds trained as one batched problem, 100 epochs;
- `sgd`: a conventional probe as per-paper scripts write it: nn.Linear, autograd, SGD with
  momentum 0.9, batch 256, cosine learning rate, 100 epochs, one seed.

    .venv/bin/python benchmarks/probe_speed.py --ckpt runs/cifar10-cpu/simclr-s0/last.ckpt \
        --data ../shared/data/cifar10-jpeg.zip
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import equissl
from common import provenance
from equissl.app.config import DataConfig
from equissl.app.export import export_backbone
from equissl.data import load_data
from equissl.eval.linear import linear_probe, standardise


def sgd_probe(x, y, xt, yt, classes: int, epochs: int, batch: int, lr: float) -> float:
    """The conventional loop: one nn.Linear, autograd, SGD + momentum, cosine lr."""
    x, xt = standardise(x, xt)
    gen = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(x.shape[1], classes)
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9)
    steps = epochs * math.ceil(x.shape[0] / batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        for i in range(0, x.shape[0], batch):
            idx = order[i : i + batch]
            loss = F.cross_entropy(head(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        return 100.0 * float((head(xt).argmax(1) == yt).double().mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--data", required=True, help="CIFAR-10 ImageFolder folder or zip")
    p.add_argument("--cache-dir", default=".cache/equissl")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--sgd-lr", type=float, default=0.1)
    args = p.parse_args()
    args.batch, args.size = 256, 32
    print(provenance(args, torch.device("cpu"), f"probes on features of {args.ckpt}"))
    with tempfile.TemporaryDirectory() as tmp:
        weights, _ = export_backbone(args.ckpt, Path(tmp) / "backbone.safetensors")
        encoder = equissl.load_backbone(weights)
    data = load_data(DataConfig(name="imagefolder", path=args.data, cache_dir=args.cache_dir))
    t0 = time.perf_counter()
    x = equissl.extract_features(encoder, data.train.images, batch_size=500)
    xt = equissl.extract_features(encoder, data.test.images, batch_size=500)
    print(f"# features {tuple(x.shape)} + {tuple(xt.shape)} in {time.perf_counter() - t0:.0f} s")
    y, yt = data.train.labels, data.test.labels
    rows = []
    for solver in ("lbfgs", "adamw"):
        r = linear_probe(x, y, xt, yt, num_classes=10, solver=solver, epochs=args.epochs)
        accs = ", ".join(f"{a:.2f}" for a in r["accs"])
        rows.append((solver, len(r["accs"]), r["acc_mean"], accs, r["seconds"]))
    t0 = time.perf_counter()
    acc = sgd_probe(x, y, xt, yt, 10, args.epochs, 256, args.sgd_lr)
    rows.append(("sgd (conventional)", 1, acc, f"{acc:.2f}", time.perf_counter() - t0))
    print("| probe | seeds | test acc % | per seed | seconds |")
    print("|---|---:|---:|---|---:|")
    for name, seeds, mean, accs, seconds in rows:
        print(f"| {name} | {seeds} | {mean:.2f} | {accs} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
