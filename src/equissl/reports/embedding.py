"""Pictures of a representation: a 2-D map of test features coloured by class, and a grid of
query images with their nearest neighbours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from equissl.reports.figure import panel_row, save_png


def plot_embedding_maps(
    maps: dict[str, np.ndarray], labels: torch.Tensor, classes: list[str], out_png: str | Path
) -> Path:
    """One panel per map (e.g. {"t-SNE": coords, "UMAP": coords}), points coloured by class."""
    fig, axes = panel_row(len(maps))
    y = labels.numpy()
    for ax, (title, coords) in zip(axes, maps.items(), strict=True):
        for c, name in enumerate(classes):
            keep = y == c
            ax.scatter(coords[keep, 0], coords[keep, 1], s=3, label=name, alpha=0.7)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[-1].legend(markerscale=4, fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    return save_png(fig, out_png)


def plot_retrieval(
    queries: torch.Tensor,
    neighbours: torch.Tensor,
    query_labels: torch.Tensor,
    neighbour_labels: torch.Tensor,
    classes: list[str],
    out_png: str | Path,
) -> Path:
    """A grid: each row a uint8 query image (C, H, W) then its k neighbours (Q, k, C, H, W),
    titled by class; a neighbour of another class is titled in red."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    q, k = neighbours.shape[:2]
    fig = Figure(figsize=(1.1 * (k + 1), 1.2 * q), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(q, k + 1, squeeze=False)
    for i in range(q):
        row = [(queries[i], query_labels[i], "black")]
        for j in range(k):
            colour = "black" if neighbour_labels[i, j] == query_labels[i] else "red"
            row.append((neighbours[i, j], neighbour_labels[i, j], colour))
        for ax, (image, label, colour) in zip(axes[i], row, strict=True):
            picture = image.permute(1, 2, 0).numpy()
            ax.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture, cmap="gray")
            ax.set_title(classes[int(label)], fontsize=6, color=colour)
            ax.set_axis_off()
    axes[0][0].set_title(f"query: {classes[int(query_labels[0])]}", fontsize=6)
    return save_png(fig, out_png)
