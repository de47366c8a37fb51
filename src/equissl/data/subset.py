"""Seeded, class-aware index selection: balanced subsets and stratified train/test splits."""

from __future__ import annotations

import numpy as np
import torch


def _rank_in_class(labels: np.ndarray, seed: int) -> np.ndarray:
    """For each item, its position within its class in a seeded random order (0, 1, ...)."""
    order = np.random.default_rng(seed).permutation(len(labels))
    by_class = order[np.argsort(labels[order], kind="stable")]
    sorted_labels = labels[by_class]
    starts = np.searchsorted(sorted_labels, sorted_labels, side="left")
    rank = np.empty(len(labels), dtype=np.int64)
    rank[by_class] = np.arange(len(labels)) - starts
    return rank


def _quotas(counts: np.ndarray, n: int) -> np.ndarray:
    """n spread evenly over the classes present (remainder to the first ones), capped at each
    class's count; what a small class cannot take goes to the others."""
    quota = np.zeros_like(counts)
    active = np.flatnonzero(counts)
    remaining = n
    while remaining > 0 and len(active):
        share, extra = divmod(remaining, len(active))
        give = share + (np.arange(len(active)) < extra)
        give = np.minimum(give, counts[active] - quota[active])
        quota[active] += give
        remaining -= int(give.sum())
        active = active[quota[active] < counts[active]]
    return quota


def balanced_subset(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Indices (ascending) of a class-balanced subset of `n` items: n // classes per class, the
    remainder to the first classes, members drawn by a seeded permutation. All when n >= len."""
    values = labels.cpu().numpy().astype(np.int64)
    if n >= len(values):
        return torch.arange(len(values))
    if n < 0 or (values < 0).any():
        raise ValueError("balanced_subset needs n >= 0 and non-negative labels")
    quota = _quotas(np.bincount(values), n)
    keep = np.flatnonzero(_rank_in_class(values, seed) < quota[values])
    return torch.from_numpy(keep)


def stratified_split(
    labels: np.ndarray, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/test indices (each ascending) holding out round(fraction * count) per class."""
    values = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(values)
    n_test = np.round(counts * test_fraction).astype(np.int64)
    is_test = _rank_in_class(values, seed) < n_test[values]
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)
