"""Figures for reports: a row of panels on a private Agg figure, written as a PNG atomically.

Matplotlib is imported inside the functions so that importing equissl.reports stays cheap; no
screen is needed and pyplot's global state is untouched.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from equissl.reports.atomic import write_bytes_atomic


def panel_row(count: int, title: str | None = None) -> tuple[Any, list[Any]]:
    """A constrained-layout figure with `count` side-by-side axes (4.5 x 3.5 in each)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5 * count, 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    if title:
        fig.suptitle(title)
    return fig, list(fig.subplots(1, count, squeeze=False)[0])


def save_png(fig: Any, out_png: str | Path) -> Path:
    """Render `fig` at 100 dpi and write it to `out_png` atomically; returns the path."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return write_bytes_atomic(out_png, buf.getvalue())
