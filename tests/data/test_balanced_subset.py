"""balanced_subset and stratified_split: exact per-class counts, order, seeded reproducibility."""

from __future__ import annotations

import numpy as np
import torch

from equissl.data import balanced_subset
from equissl.data.subset import stratified_split

LABELS = torch.arange(10).repeat_interleave(50)[
    torch.randperm(500, generator=torch.Generator().manual_seed(3))
]


def test_counts_remainder_to_first_classes():
    keep = balanced_subset(LABELS, 25)
    assert keep.dtype == torch.int64 and len(keep) == 25
    assert LABELS[keep].bincount().tolist() == [3, 3, 3, 3, 3, 2, 2, 2, 2, 2]
    assert torch.all(keep[1:] > keep[:-1])  # original order, no repeats


def test_seeded():
    assert torch.equal(balanced_subset(LABELS, 40), balanced_subset(LABELS, 40, seed=0))
    assert not torch.equal(balanced_subset(LABELS, 40), balanced_subset(LABELS, 40, seed=1))


def test_limit_over_size_keeps_all():
    assert torch.equal(balanced_subset(LABELS, 500), torch.arange(500))
    assert torch.equal(balanced_subset(LABELS, 10**6), torch.arange(500))


def test_small_classes_give_their_share_to_others():
    labels = torch.tensor([0] + [1] * 10 + [2] * 10)
    assert labels[balanced_subset(labels, 9)].bincount().tolist() == [1, 4, 4]
    assert labels[balanced_subset(labels, 20)].bincount().tolist() == [1, 10, 9]


def test_stratified_split():
    labels = np.repeat([0, 1, 2], [10, 5, 7])
    train, test = stratified_split(labels, 0.2, seed=0)
    assert np.bincount(labels[test]).tolist() == [2, 1, 1]
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(22))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    np.testing.assert_array_equal(test, stratified_split(labels, 0.2, seed=0)[1])
