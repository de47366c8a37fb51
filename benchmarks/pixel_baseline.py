"""Linear probe and kNN on raw pixels: the floor every pretrained encoder must beat.

Uses the same data, subset and evaluation settings as a pretraining config, and writes
<out_dir>/<name>/results.json so `equissl report` can put it beside the pretrained runs.

    .venv/bin/python benchmarks/pixel_baseline.py cifar10-cpu data.name=imagefolder \\
        data.path=../shared/data/cifar10-jpeg.zip out_dir=runs/cifar10-cpu name=raw-pixels
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from equissl.app.config import build_config
from equissl.app.suite import probe_and_knn
from equissl.augment import channel_stats, normalize, to_float
from equissl.data import load_data
from equissl.reports.atomic import write_text_atomic


def pixels(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return normalize(to_float(images), mean, std).flatten(1)


def main(argv: list[str]) -> dict:
    presets = [a for a in argv if "=" not in a]
    cfg = build_config(presets, [a for a in argv if "=" in a])
    data = load_data(cfg.data)
    t0 = time.perf_counter()
    mean, std = channel_stats(data.train.images)
    train_x, test_x = pixels(data.train.images, mean, std), pixels(data.test.images, mean, std)
    results = {
        "name": cfg.name,
        "method": "raw-pixels",
        "seed": cfg.seed,
        "data": cfg.data.name,
        **probe_and_knn(cfg, train_x, test_x, data, torch.device("cpu")),
        "eval_seconds": time.perf_counter() - t0,
    }
    run_dir = Path(cfg.out_dir) / cfg.name
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "results.json", json.dumps(results, indent=2) + "\n")
    print(
        f"raw pixels: linear {results['linear_acc']:.2f} ± {results['linear_std']:.2f}, "
        f"kNN {results['knn_acc']:.2f} -> {run_dir}"
    )
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
