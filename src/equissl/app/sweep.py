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

import json
from dataclasses import dataclass, field
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from equissl.app.config import _load_yaml, build_config, flat_settings, parse_overrides, sweep_path
from equissl.app.outputs import OutputError, check_writable
from equissl.app.runner import method_label, pretrain, write_json
from equissl.errors import ConfigError, UserError
from equissl.reports import (
    collect_results,
    markdown_table,
    plot_curves,
    plot_rows_sensitivity,
    write_table,
)

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


def _member_conflicts(
    shared: DictConfig, own: DictConfig, final: DictConfig, run: SweepRun
) -> str | None:
    """The first setting a run makes itself (its presets and overrides, where they differ from
    the sweep's shared settings, or name a key outright) that a command-line override would
    replace; None when there is none."""
    base, mine, last = flat_settings(shared), flat_settings(own), flat_settings(final)
    named = {key for key, _ in parse_overrides(run.overrides)}
    for key in sorted(mine):
        sets_it = mine[key] != base.get(key) or any(
            key == n or key.startswith(f"{n}.") for n in named
        )
        if sets_it and last.get(key) != mine[key]:
            return (
                f"sweep run '{run.name}' sets {key}={mine[key]!r} itself, and the command line "
                f"would make it {last.get(key)!r}; command-line overrides apply only to settings "
                "no run sets: edit (a copy of) the sweep file to change this run"
            )
    return None


def sweep_configs(
    sweep: Sweep, overrides: list[str] = (), out_dir: str = "runs", scale: str | None = None
) -> tuple[Path, list[DictConfig]]:
    """The sweep folder and every run's validated configuration: scale presets, the sweep's,
    the run's, then scale, sweep, run and command-line overrides. A command-line override may
    not replace a setting a run makes itself (one line, ConfigError): see `_member_conflicts`."""
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
    shared_presets = [*scale_presets, *sweep.presets]
    shared_overrides = [*scale_overrides, *sweep.overrides]
    configs = []
    for run in sweep.runs:
        where = [f"name={run.name}", f"out_dir={root}"]
        final = build_config(
            [*shared_presets, *run.presets],
            [*shared_overrides, *run.overrides, *overrides, *where],
        )
        if overrides:
            shared = build_config(shared_presets, [*shared_overrides, *where], check=False)
            own = build_config(
                [*shared_presets, *run.presets],
                [*shared_overrides, *run.overrides, *where],
                check=False,
            )
            conflict = _member_conflicts(shared, own, final, run)
            if conflict:
                raise ConfigError(conflict)
        configs.append(final)
    return root, configs


# Settings that do not change a finished run's results: a changed value does not rerun it.
RERUN_FREE = ("trainer.", "out_dir", "data.path", "data.cache_dir", "data.device_resident")


def finished_earlier(run_dir: Path, cfg: DictConfig) -> bool:
    """A run counts as finished when it has results.json without a recorded failure and its
    saved config.yaml equals today's resolved configuration (trainer settings and data paths
    aside)."""
    results, saved = run_dir / "results.json", run_dir / "config.yaml"
    if not results.is_file() or not saved.is_file():
        return False
    try:
        recorded = json.loads(results.read_text(encoding="utf-8"))
        before = flat_settings(OmegaConf.load(saved))
    except Exception:  # noqa: BLE001 - a damaged file means: run it again
        return False
    if not isinstance(recorded, dict) or "failed" in recorded:
        return False
    now = flat_settings(cfg)
    keys = {k for k in {*before, *now} if not k.startswith(RERUN_FREE)}
    return all(before.get(k) == now.get(k) for k in keys)


class SweepFailed(UserError):
    """Some runs of a sweep failed; the others finished and the table was written."""


def run_sweep(
    sweep: Sweep, overrides: list[str] = (), out_dir: str = "runs", scale: str | None = None
) -> tuple[str, Path, list[str]]:
    """Run each configuration not yet finished; returns (Markdown table, sweep folder, the
    one-line failures). A run that fails with a user error (a diverged loss, a bad file, a
    held run folder) is recorded as failed with its reason, and the sweep goes on."""
    check_writable(Path(out_dir), "sweep folder")
    # Every run is validated before the first one starts.
    root, configs = sweep_configs(sweep, overrides, out_dir, scale)
    if (root / "config.yaml").is_file():
        raise ConfigError(
            f"{root} is the folder of a single run (it holds config.yaml), not of a sweep; "
            f"pass out_dir=... or move that run"
        )
    failures: list[str] = []
    for cfg in configs:
        run_dir = root / cfg.name
        if finished_earlier(run_dir, cfg):
            print(f"[sweep] {cfg.name}: finished earlier, skipped")
            continue
        print(f"[sweep] {cfg.name}: pretraining ({cfg.optim.epochs} epochs)", flush=True)
        try:
            r = pretrain(cfg)
        except UserError as exc:  # recorded as a result, and the sweep goes on
            reason = " ".join(str(exc).split())
            print(f"[sweep] {cfg.name}: failed: {reason}", flush=True)
            failures.append(f"{cfg.name}: {reason}")
            if rank_zero_only.rank == 0 and not isinstance(exc, OutputError):
                r = {"name": cfg.name, "method": method_label(cfg), "failed": reason}
                write_json(run_dir / "results.json", r)
            continue
        shown = ("linear_acc", "knn_acc", "transform_acc", "train_seconds")
        print(
            f"[sweep] {cfg.name}: " + "  ".join(f"{k}={r[k]:.2f}" for k in shown if k in r),
            flush=True,
        )
    if rank_zero_only.rank != 0:  # under DDP, only the first process reports
        return "", root, failures
    dirs = [root / cfg.name for cfg in configs]
    rows = collect_results(dirs)
    for row, cfg in zip(rows, configs, strict=True):
        row["name"] = cfg.name  # the sweep's name for the run (a reused run may carry another)
    add_gains(rows, sweep.baselines, sweep.gains)
    write_table(rows, sweep.columns, root / "results", title=sweep.name, group_by=sweep.group_by)
    (root / "curves.png").unlink(missing_ok=True)  # a rerun's curves replace the last ones
    plot_curves(dirs, root / "curves.png")
    plot_rows_sensitivity(rows, root / "hue_sensitivity.png")
    return markdown_table(rows, sweep.columns, group_by=sweep.group_by), root, failures


def raise_failures(failures: list[str], root: Path) -> None:
    """After the table: one line naming the failed runs (exit status 2)."""
    if failures:
        raise SweepFailed(
            f"{len(failures)} run(s) of the sweep failed, recorded in their results.json and "
            f"rerun next time: {'; '.join(failures)}"[:600]
        )
