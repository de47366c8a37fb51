"""Relative (Cayley-style) tables computed numerically from what the elements do to pixels.

An element that is a pixel permutation, optionally followed by value inversion x -> 1 - x
(the two commute), is described exactly by its *signature*: a gather table T (H*W,) with
out[p] = x[T[p]] and an inversion bit. Composition is exact on signatures: applying a then r
gives the table T_a[T_r] and the bit s_a xor s_r. The relative table is found by looking the
composites up among the elements' signatures, so it is correct for any such set, also for
products whose factors do not commute (rotation+jigsaw), where a naive product table is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor


def relative_table(
    tables: Tensor, inverted: Tensor | None = None, generators: Sequence[int] | None = None
) -> Tensor | None:
    """(K, K) long table with relative[a, b] = r such that g_b = g_r o g_a, or None where
    some g_b o g_a^-1 is not in the set (a full table exists exactly when the set is a group).

    `tables` (K, H*W): gather tables; `inverted` (K,) bool: value inversion after the
    permutation (default none); `generators`: labels of elements that generate the group the
    set spans (default all; a product passes its factors' elements). Where several r
    qualify (a non-faithful set such as hflip+hflip), the smallest is taken.

    Exact: closure is checked on every pixel (label 0 is the identity, and G o s in G for each
    generator s imply that G is a group); composites in a group are then identified by their
    values on a few pixels that tell the elements apart. Cost: K (#generators) H W.
    """
    k = tables.shape[0]
    bits = np.zeros(k, np.int64) if inverted is None else inverted.cpu().numpy().astype(np.int64)
    t = tables.cpu().numpy().astype(np.int64)
    keyed = np.concatenate([bits[:, None], t], 1)  # column 0: the inversion bit, 1 + p: pixel p
    columns = _separating_columns(keyed)
    pixels = columns[1:] - 1
    labels_of: dict[bytes, list[int]] = {}
    for b in range(k):
        labels_of.setdefault(keyed[b, columns].tobytes(), []).append(b)

    for s in range(k) if generators is None else generators:
        # row a: apply a, then s (out[p] = x[t[a][t[s][p]]])
        composites = np.concatenate([(bits ^ bits[s])[:, None], t[:, t[s]]], 1)
        found = [labels_of.get(row.tobytes(), [-1])[0] for row in composites[:, columns]]
        if min(found) < 0 or not np.array_equal(composites, keyed[found]):
            return None
    rel = np.full((k, k), -1, np.int64)
    for a in range(k):
        keys = np.concatenate([(bits[a] ^ bits)[:, None], t[a][t[:, pixels]]], 1)
        for r, key in enumerate(keys):
            for b in labels_of[key.tobytes()]:
                if rel[a, b] < 0:
                    rel[a, b] = r
    return torch.from_numpy(rel)


def generating_labels(relative: Tensor) -> list[int]:
    """A few labels whose elements generate the group with table `relative` (greedily: each
    element not yet reached becomes a generator); every label where a row of the table is
    not a permutation (a non-faithful set)."""
    rel = relative.cpu().numpy()
    k = len(rel)
    compose = np.full((k, k), -1, np.int64)  # compose[a, r] = b: applying a, then r, is b
    for a in range(k):
        compose[a, rel[a]] = np.arange(k)
    if (compose < 0).any():
        return list(range(k))
    generators: list[int] = []
    reached = {0}
    for g in range(k):
        if g in reached:
            continue
        generators.append(g)
        frontier = list(reached)
        while frontier:
            h = frontier.pop()
            for s in generators:
                b = int(compose[h, s])
                if b not in reached:
                    reached.add(b)
                    frontier.append(b)
    return generators


def _separating_columns(keyed: np.ndarray) -> np.ndarray:
    """Columns of `keyed` (K, 1 + H W) on which its distinct rows already differ: the
    inversion bit and a spread of 64 pixels, or every column where those do not suffice."""
    width = keyed.shape[1]
    columns = np.unique(np.linspace(1, width - 1, min(width - 1, 64)).round().astype(np.int64))
    columns = np.concatenate([[0], columns])
    distinct = len({row.tobytes() for row in keyed})
    if len({row.tobytes() for row in keyed[:, columns]}) == distinct:
        return columns
    return np.arange(width)


def probe_signatures(
    apply: Callable[[Tensor, Tensor], Tensor], num_labels: int, size: int
) -> tuple[Tensor, Tensor] | None:
    """The signatures (tables (K, H*W), inverted (K,)) of every element of `apply`, read off
    by applying it to an image of distinct pixel values; None where some element is not a
    pixel permutation optionally followed by inversion.

    The probe is float64 with values (p + 1) / (4 H W) in (0, 1/4]: inverted values lie in
    [3/4, 1), so inversion is unambiguous and every value decodes exactly to its pixel index.
    """
    hw = size * size
    scale = 4.0 * hw
    probe = (torch.arange(hw, dtype=torch.float64) + 1) / scale
    probe = probe.view(1, 1, size, size).expand(num_labels, 1, size, size).contiguous()
    out = apply(probe, torch.arange(num_labels)).reshape(num_labels, hw)
    inverted = out > 0.5
    if not torch.equal(inverted.all(1), inverted.any(1)):
        return None  # part of an image inverted: not a global value inversion
    values = torch.where(inverted, 1 - out, out) * scale - 1
    tables = values.round()
    if (values - tables).abs().max() > 1e-6:
        return None
    tables = tables.long()
    expected = torch.arange(hw).expand(num_labels, hw)
    if not torch.equal(tables.sort(1).values, expected):
        return None  # not a permutation of the pixels
    return tables, inverted[:, 0]
