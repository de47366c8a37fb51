"""Several runs side by side: resumable (finished runs are skipped), then one table and one plot.

A sweep file (YAML) names the runs:

    name: demo                # folder under out_dir
    presets: [demo]           # applied to every run, before each run's own
    overrides: []             # key=value for every run
    columns: [method, seed, linear_acc, knn_acc, rotation_acc]
    group_by: null            # e.g. method: mean +- std over seeds
    runs:
      - {name: simclr, presets: [simclr]}
      - {name: esimclr, presets: [esimclr], overrides: [method.equivariance.0.weight=0.4]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import OmegaConf

from equissl.config import _load_yaml, build_config, find_preset
from equissl.errors import ConfigError
from equissl.reports import collect_results, markdown_table, plot_curves, write_table
from equissl.runner import pretrain

DEFAULT_COLUMNS = [
    "name",
    "method",
    "seed",
    "linear_acc",
    "linear_std",
    "knn_acc",
    "rotation_acc",
    "train_seconds",
]


@dataclass
class SweepRun:
    name: str
    presets: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)


@dataclass
class Sweep:
    name: str
    runs: list[SweepRun]
    presets: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=lambda: list(DEFAULT_COLUMNS))
    group_by: str | None = None


def load_sweep(name: str) -> Sweep:
    """A sweep by preset name or path, validated against the Sweep schema."""
    raw = _load_yaml(find_preset(name))
    try:
        sweep = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Sweep), raw))
    except Exception as exc:  # noqa: BLE001 - OmegaConf raises several kinds
        raise ConfigError(f"bad sweep file {name}: {' '.join(str(exc).split())[:200]}") from None
    if not sweep.runs:
        raise ConfigError(f"sweep file {name} lists no runs")
    return sweep  # type: ignore[return-value]


def run_sweep(sweep: Sweep, overrides: list[str] = (), out_dir: str = "runs") -> tuple[str, Path]:
    """Run each configuration not yet finished; returns (Markdown table, sweep folder)."""
    root = Path(out_dir) / sweep.name
    configs = [
        build_config(
            [*sweep.presets, *run.presets],
            [*sweep.overrides, *run.overrides, *overrides, f"name={run.name}", f"out_dir={root}"],
        )
        for run in sweep.runs
    ]  # validate every run before the first one starts
    for cfg in configs:
        if (root / cfg.name / "results.json").exists():
            print(f"[sweep] {cfg.name}: finished earlier, skipped")
            continue
        print(f"[sweep] {cfg.name}: pretraining ({cfg.optim.epochs} epochs)", flush=True)
        r = pretrain(cfg)
        shown = ("linear_acc", "knn_acc", "rotation_acc", "train_seconds")
        print(
            f"[sweep] {cfg.name}: " + "  ".join(f"{k}={r[k]:.2f}" for k in shown if k in r),
            flush=True,
        )
    if rank_zero_only.rank != 0:  # under DDP, only the first process reports
        return "", root
    dirs = [root / cfg.name for cfg in configs]
    rows = collect_results(dirs)
    write_table(rows, sweep.columns, root / "results", title=sweep.name, group_by=sweep.group_by)
    plot_curves(dirs, root / "curves.png")
    return markdown_table(rows, sweep.columns, group_by=sweep.group_by), root
