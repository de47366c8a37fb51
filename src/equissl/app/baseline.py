"""`equissl baseline pixels|random`: the rows every results table needs beside trained encoders.

`pixels`: the raw pixels, normalised per channel with the training images' statistics and
flattened, as features. `random`: the configured method's backbone at its random
initialisation (seeded by `seed`), untrained. Both are evaluated by the same code as a
pretrained run (linear probe, kNN, and the suite's parts switched on in `eval`, transfer
included) and write `runs/<name>/` with config.yaml and results.json, so `equissl report` tables
them beside trained runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig

from equissl.app.config import to_yaml
from equissl.app.outputs import check_writable, run_folder_lock
from equissl.app.progress import echo, format_seconds, timed_load
from equissl.app.runner import (
    _set_threads,
    check_accelerator,
    evaluate_encoder,
    evaluate_method,
    labelled_for_evaluation,
    method_for,
    pretraining_images,
)
from equissl.app.runs import backbone_label, run_dir_of, write_json
from equissl.app.train import uses_cuda
from equissl.augment import channel_stats
from equissl.errors import UserError
from equissl.reports.atomic import write_text_atomic

BASELINES = ("pixels", "random")
LABELS = {"pixels": "raw-pixels", "random": "random-init"}  # the `method` column of tables


class PixelEncoder(torch.nn.Module):
    """Raw pixels as features: the frozen "backbone" flattens the normalised images."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.backbone = torch.nn.Flatten()
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())


def run_baseline(kind: str, cfg: DictConfig) -> dict[str, Any]:
    """Evaluate the `kind` baseline as `cfg` says and write its run folder; returns the results."""
    if kind not in BASELINES:
        raise UserError(f"unknown baseline '{kind}'; choose one of {', '.join(BASELINES)}")
    _set_threads(cfg)
    check_accelerator(cfg)
    run_dir = run_dir_of(cfg)
    check_writable(run_dir, "run folder")
    with run_folder_lock(run_dir):
        if (run_dir / "last.ckpt").exists():
            raise UserError(f"{run_dir} holds a pretraining run; pass another name=...")
        return _run_locked(kind, cfg, run_dir)


def _run_locked(kind: str, cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    data = timed_load(cfg.data)
    labelled = labelled_for_evaluation(data, cfg)
    if labelled is None:
        raise UserError(
            "the data has no labels, so a baseline has nothing to measure; evaluate on a "
            "labelled set with eval.data.name=... eval.data.path=..."
        )
    L.seed_everything(cfg.seed, verbose=False)  # the random initialisation
    mean, std = channel_stats(pretraining_images(data)[0])
    device = torch.device("cuda" if uses_cuda(cfg) else "cpu")
    results: dict[str, Any] = {
        "name": cfg.name,
        "method": LABELS[kind],
        "backbone": "pixels" if kind == "pixels" else backbone_label(cfg),
        "data": cfg.data.name,
        "seed": cfg.seed,
        "baseline": kind,
        "epochs": 0,
        "steps": 0,
    }
    if kind == "random":
        results.update(
            evaluate_method(method_for(cfg, data, mean, std), data, cfg, device, run_dir)
        )
        results.pop("online_acc", None)  # an untrained classifier's accuracy measures nothing
    else:
        t0 = time.perf_counter()
        encoder = PixelEncoder(mean, std).to(device)
        metrics, _ = evaluate_encoder(encoder, labelled, cfg, device, run_dir)
        results.update(metrics, eval_seconds=time.perf_counter() - t0)
        echo(f"evaluated in {format_seconds(results['eval_seconds'])}")
    write_text_atomic(run_dir / "config.yaml", to_yaml(cfg))
    write_json(run_dir / "results.json", results)
    return results
