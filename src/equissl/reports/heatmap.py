"""The corruption-robustness heat map: accuracy per corruption (rows) and severity (columns)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from equissl.reports.figure import save_png


def plot_corruption_heatmap(
    table: dict[str, list[float]], clean: float, out_png: str | Path, title: str = ""
) -> Path:
    """Linear-probe accuracy (percent) per corruption and severity, each cell annotated; the
    clean accuracy and the mean over all cells in the title."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(table)
    values = np.array([table[n] for n in names])
    fig = Figure(figsize=(1.0 * values.shape[1] + 3, 0.35 * len(names) + 1.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    top = max(clean, float(values.max()))
    image = ax.imshow(values, cmap="viridis", vmin=0, vmax=top, aspect="auto")
    ax.set_xticks(range(values.shape[1]), [str(s + 1) for s in range(values.shape[1])])
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("severity")
    for (r, c), v in np.ndenumerate(values):
        shade = "black" if v > 0.6 * top else "white"  # readable on viridis' light and dark ends
        ax.text(c, r, f"{v:.1f}", ha="center", va="center", fontsize=7, color=shade)
    fig.colorbar(image, ax=ax, label="linear-probe accuracy (%)")
    head = f"{title}: " if title else ""
    ax.set_title(f"{head}clean {clean:.1f}%, mean corrupted {values.mean():.1f}%", fontsize=9)
    return save_png(fig, out_png)
