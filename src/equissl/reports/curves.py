"""Training curves: read Lightning's CSVLogger metrics.csv and plot runs side by side."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from equissl.errors import DataError, UserError
from equissl.reports.figure import panel_row, save_png

DEFAULT_METRICS = ("train/loss", "train/online_acc", "train/transform_acc")


def _metrics_path(run_dir: str | Path) -> Path:
    path = Path(run_dir)
    return path if path.suffix == ".csv" else path / "metrics.csv"


def _to_float(cells: np.ndarray, path: Path, column: str) -> np.ndarray:
    try:
        return cells.astype(np.float64)
    except ValueError:
        raise DataError(f"{path}: column {column!r} holds a value that is not a number") from None


def read_metrics(run_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each logged column of `<run_dir>/metrics.csv` (or of a .csv path) as (steps, values).

    Empty cells (a column not logged in that row) are dropped, columns never logged are left
    out, and when a step appears more than once (a resumed run appends rows) the last value in
    file order wins. Steps are int64 and ascending, values float64 (a logged NaN stays NaN).
    """
    path = _metrics_path(run_dir)
    if not path.is_file():
        raise UserError(f"missing metrics file: {path}")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        width = len(header) if header else 0
        rows = [(row + [""] * width)[:width] for row in reader]
    if not header or "step" not in header:
        raise DataError(f"{path} has no 'step' column")
    cells = np.array(rows, dtype=object).reshape(len(rows), len(header))
    present = cells != ""
    step_col = header.index("step")
    has_step = present[:, step_col]
    steps = _to_float(cells[has_step, step_col], path, "step").astype(np.int64)
    metrics = {}
    for j, column in enumerate(header):
        keep = present[has_step, j]
        if column == "step" or not keep.any():
            continue
        values = _to_float(cells[has_step, j][keep], path, column)
        # np.unique on the reversed rows finds each step's last occurrence in file order
        unique_steps, last = np.unique(steps[keep][::-1], return_index=True)
        metrics[column] = (unique_steps, values[::-1][last])
    return metrics


def _run_label(run_dir: str | Path) -> str:
    path = Path(run_dir)
    return path.parent.name if path.suffix == ".csv" else path.name


def plot_curves(
    run_dirs: list[str | Path],
    out_png: str | Path,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    labels: list[str] | None = None,
) -> Path | None:
    """Plot `metrics` against step, one subplot per metric that at least one run logged and one
    line per run, in the same colour in every panel (labelled by its folder name unless `labels`
    is given; runs without a metrics file draw nothing); write the PNG atomically and return its
    path, or None (nothing written) when no run logged any of the metrics, so that a sweep of
    runs too short to log still gets its table. Rendered with Agg on a private Figure, so no
    screen is needed and pyplot's global state is untouched.
    """
    if not run_dirs:
        raise UserError("no runs to plot")
    if labels is not None and len(labels) != len(run_dirs):
        raise UserError(f"got {len(labels)} labels for {len(run_dirs)} runs")
    labels = labels if labels is not None else [_run_label(d) for d in run_dirs]
    # Runs that never trained (0 epochs, raw-pixel baselines) have no metrics file: no line.
    curves = [read_metrics(d) if _metrics_path(d).is_file() else {} for d in run_dirs]
    shown = [m for m in metrics if any(m in run for run in curves)]
    if not shown:
        return None
    fig, axes = panel_row(len(shown))
    for ax, metric in zip(axes, shown, strict=True):
        for i, (label, run) in enumerate(zip(labels, curves, strict=True)):
            if metric in run:  # colour by run, not by the lines drawn in this panel
                ax.plot(*run[metric], label=label, linewidth=1.2, color=f"C{i % 10}")
        ax.set_title(metric)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return save_png(fig, out_png)
