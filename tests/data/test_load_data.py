"""load_data: the digits default, limits, channels, size, and dispatch errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from official_formats import write_stl10

from equissl.app.config import DataConfig
from equissl.data import DataSplits, load_data
from equissl.errors import DataError

DIGIT_LEVELS = {round(v * 255 / 16) for v in range(17)}


def test_digits_default():
    splits = load_data(DataConfig())
    assert isinstance(splits, DataSplits) and splits.name == "digits"
    assert len(splits.train) + len(splits.test) == 1797
    assert len(splits.test) == 359  # round(20%) of each class: 178 -> 36, 177 -> 35, ...
    assert splits.train.images.shape[1:] == (3, 8, 8) and splits.train.images.dtype == torch.uint8
    assert splits.num_classes == 10 and splits.train.classes == [str(d) for d in range(10)]
    assert splits.image_size == 8 and splits.channels == 3
    values = set(torch.cat([splits.train.images, splits.test.images]).unique().tolist())
    assert values <= DIGIT_LEVELS and {0, 255} <= values
    assert splits.test.labels.bincount().tolist() == [36, 36, 35, 37, 36, 36, 36, 36, 35, 36]
    again = load_data(DataConfig())
    assert torch.equal(again.test.images, splits.test.images)


def test_digits_one_channel_limits_and_size():
    cfg = DataConfig(channels=1, limit=25, test_limit=10, size=16)
    splits = load_data(cfg)
    assert splits.train.images.shape == (25, 1, 16, 16)
    assert splits.train.labels.bincount().tolist() == [3, 3, 3, 3, 3, 2, 2, 2, 2, 2]
    assert splits.test.labels.bincount().tolist() == [1] * 10
    full = load_data(DataConfig(channels=1, limit=10**6))
    assert len(full.train) == 1438
    assert set(full.train.images.unique().tolist()) <= DIGIT_LEVELS


def test_stl10_through_load_data(tmp_path):
    written = write_stl10(tmp_path)
    cfg = DataConfig(
        name="stl10", path=str(written.path), unlabeled=True, channels=1, size=32, limit=2
    )
    splits = load_data(cfg)
    assert splits.train.images.shape == (2, 1, 32, 32)
    assert splits.unlabeled.images.shape == (2, 1, 32, 32)  # converted, never cut
    assert splits.test.images.shape == (3, 1, 32, 32)
    kept = np.sort(splits.train.labels.numpy())
    assert len(set(kept)) == len(kept)  # one per class


def test_unlabeled_needs_stl10():
    with pytest.raises(DataError, match="data.unlabeled=true needs data.name=stl10"):
        load_data(DataConfig(unlabeled=True))


def test_limits_above_the_split_sizes_warn(capsys):
    splits = load_data(DataConfig(limit=1439, test_limit=359))  # 1438 train, 359 test images
    assert len(splits.train) == 1438 and len(splits.test) == 359
    assert capsys.readouterr().err.splitlines() == [
        "equissl: warning: data.limit=1439 is above the 1438 images of the training split; "
        "using all 1438"
    ]
    load_data(DataConfig(limit=1438, test_limit=10**6), config_key="eval.transfer")
    assert capsys.readouterr().err.splitlines() == [
        "equissl: warning: eval.transfer.test_limit=1000000 is above the 359 images of the test "
        "split; using all 359"
    ]
    load_data(DataConfig(limit=1437, test_limit=358))
    assert capsys.readouterr().err == ""
