"""Several runs side by side: resumable (finished runs are skipped), then one table and one plot.

A sweep file (YAML) names the runs:

    name: demo                # folder under out_dir
    presets: [demo]           # applied to every run, before each run's own
    overrides: []             # key=value for every run
    columns: [method, seed, linear_acc, knn_acc, transform_acc]
    group_by: null            # e.g. method: mean +- std over seeds
    baselines: {}             # run -> the run it is compared with, e.g. {eq: plain}
    gains: []                 # columns whose difference from the baseline's is <column>_gain
    runs:
      - {name: simclr, presets: [simclr]}
      - {name: esimclr, presets: [esimclr], overrides: [method.equivariance.0.weight=0.4]}

An experiment is a sweep with `scales`: each scale (smoke, cpu, paper) names the protocol
presets and key=value settings it adds, applied before each run's own; its runs go under
`<out_dir>/<name>-<scale>/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from equissl.config import _load_yaml, build_config, sweep_path
from equissl.errors import ConfigError, NonFiniteLossError
from equissl.reports import (
    collect_results,
    markdown_table,
    plot_curves,
    plot_rows_sensitivity,
    write_table,
)
from equissl.runner import method_label, pretrain, write_json

DEFAULT_COLUMNS = [
    "name",
    "method",
    "seed",
    "linear_acc",
    "linear_std",
    "knn_acc",
    "transform_acc",
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
    scales: dict[str, list[str]] = field(default_factory=dict)
    baselines: dict[str, str] = field(default_factory=dict)
    gains: list[str] = field(default_factory=list)


def add_gains(rows: list[dict], baselines: dict[str, str], columns: list[str]) -> None:
    """Give each row with a baseline run `<column>_gain`: its value minus the baseline's (for
    the columns both have as numbers)."""
    by_name = {row["name"]: row for row in rows}
    for name, base in baselines.items():
        row, ref = by_name.get(name), by_name.get(base)
        if row is None or ref is None:
            continue
        for c in columns:
            if isinstance(row.get(c), int | float) and isinstance(ref.get(c), int | float):
                row[f"{c}_gain"] = row[c] - ref[c]


def load_sweep(name: str) -> Sweep:
    """A sweep by preset name or path, validated against the Sweep schema."""
    raw = _load_yaml(sweep_path(name))
    try:
        sweep = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Sweep), raw))
    except Exception as exc:  # noqa: BLE001 - OmegaConf raises several kinds
        raise ConfigError(f"bad sweep file {name}: {' '.join(str(exc).split())[:200]}") from None
    if not sweep.runs:
        raise ConfigError(f"sweep file {name} lists no runs")
    names = {run.name for run in sweep.runs}
    unknown = sorted({*sweep.baselines, *sweep.baselines.values()} - names)
    if unknown:
        raise ConfigError(f"sweep file {name}: baselines name runs it lacks: {', '.join(unknown)}")
    return sweep  # type: ignore[return-value]


def sweep_configs(
    sweep: Sweep, overrides: list[str] = (), out_dir: str = "runs", scale: str | None = None
) -> tuple[Path, list[DictConfig]]:
    """The sweep folder and every run's validated configuration: scale presets, the sweep's,
    the run's, then scale, sweep, run and command-line overrides."""
    root = Path(out_dir) / sweep.name
    scale_presets: list[str] = []
    scale_overrides: list[str] = []
    if scale is not None:
        if scale not in sweep.scales:
            raise ConfigError(
                f"unknown scale '{scale}' for {sweep.name}; choose one of {', '.join(sweep.scales)}"
            )
        scale_presets = [s for s in sweep.scales[scale] if "=" not in s]
        scale_overrides = [s for s in sweep.scales[scale] if "=" in s]
        root = Path(out_dir) / f"{sweep.name}-{scale}"
    configs = [
        build_config(
            [*scale_presets, *sweep.presets, *run.presets],
            [
                *scale_overrides,
                *sweep.overrides,
                *run.overrides,
                *overrides,
                f"name={run.name}",
                f"out_dir={root}",
            ],
        )
        for run in sweep.runs
    ]
    return root, configs


def run_sweep(
    sweep: Sweep, overrides: list[str] = (), out_dir: str = "runs", scale: str | None = None
) -> tuple[str, Path]:
    """Run each configuration not yet finished; returns (Markdown table, sweep folder)."""
    # Every run is validated before the first one starts.
    root, configs = sweep_configs(sweep, overrides, out_dir, scale)
    for cfg in configs:
        if (root / cfg.name / "results.json").exists():
            print(f"[sweep] {cfg.name}: finished earlier, skipped")
            continue
        print(f"[sweep] {cfg.name}: pretraining ({cfg.optim.epochs} epochs)", flush=True)
        try:
            r = pretrain(cfg)
        except NonFiniteLossError as exc:  # a diverged run is a result too: record it, go on
            print(f"[sweep] {cfg.name}: failed: {exc}", flush=True)
            if rank_zero_only.rank == 0:
                r = {"name": cfg.name, "method": method_label(cfg), "failed": str(exc)}
                write_json(root / cfg.name / "results.json", r)
            continue
        shown = ("linear_acc", "knn_acc", "transform_acc", "train_seconds")
        print(
            f"[sweep] {cfg.name}: " + "  ".join(f"{k}={r[k]:.2f}" for k in shown if k in r),
            flush=True,
        )
    if rank_zero_only.rank != 0:  # under DDP, only the first process reports
        return "", root
    dirs = [root / cfg.name for cfg in configs]
    rows = collect_results(dirs)
    for row, cfg in zip(rows, configs, strict=True):
        row["name"] = cfg.name  # the sweep's name for the run (a reused run may carry another)
    add_gains(rows, sweep.baselines, sweep.gains)
    write_table(rows, sweep.columns, root / "results", title=sweep.name, group_by=sweep.group_by)
    plot_curves(dirs, root / "curves.png")
    plot_rows_sensitivity(rows, root / "hue_sensitivity.png")
    return markdown_table(rows, sweep.columns, group_by=sweep.group_by), root
