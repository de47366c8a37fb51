"""Hue-sensitivity plot: cos(f(x), f(hue(x))) against the hue shift, one line per run."""

from __future__ import annotations

from pathlib import Path

from equissl.errors import UserError
from equissl.reports.figure import panel_row, save_png


def plot_sensitivity(
    curves: dict[str, dict[str, list[float]]],
    out_png: str | Path,
    *,
    space: str = "emb",
    title: str = "hue sensitivity",
) -> Path:
    """Plot each run's hue-sensitivity curve (values of `curves`, as returned by
    `equissl.eval.hue_sensitivity`, keyed by run label) for `space`, plus one more subplot per
    other space present in every run; write the PNG atomically and return its path. Rendered
    with Agg on a private Figure (no screen, pyplot's global state untouched).
    """
    if not curves:
        raise UserError("no hue-sensitivity curves to plot")
    common = set.intersection(*(set(c) for c in curves.values())) - {"degrees"}
    if space not in common:
        raise UserError(f"space {space!r} is missing from some hue-sensitivity curves")
    for label, curve in curves.items():
        if "degrees" not in curve:
            raise UserError(f"hue-sensitivity curve {label!r} has no 'degrees'")
    shown = [space] + sorted(common - {space})
    fig, axes = panel_row(len(shown), title)
    for ax, name in zip(axes, shown, strict=True):
        for label, curve in curves.items():
            ax.plot(curve["degrees"], curve[name], label=label, marker="o", markersize=3)
        ax.set_title(name)
        ax.set_xlabel("hue shift (degrees)")
        ax.set_ylabel("cos(f(x), f(hue(x)))")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return save_png(fig, out_png)


def plot_rows_sensitivity(
    rows: list[dict], out_png: str | Path, label: str = "name"
) -> Path | None:
    """The hue-sensitivity plot of the result rows that hold a curve (labelled by `label`);
    None when none does. The embedding space is shown first when every curve has it."""
    curves = {
        str(r.get(label, i)): r["hue_sensitivity"]
        for i, r in enumerate(rows)
        if "hue_sensitivity" in r
    }
    if not curves:
        return None
    space = "emb" if all("emb" in c for c in curves.values()) else "feat"
    return plot_sensitivity(curves, out_png, space=space)
