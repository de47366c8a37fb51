"""SVHN's .mat files: (32, 32, 3, N) storage, the label 10 read as the digit 0, errors."""

from __future__ import annotations

import numpy as np
import pytest
from official_formats import write_svhn

from equissl.app.config import DataConfig
from equissl.data import load_data
from equissl.errors import DataError


def _load(path, tmp_path):
    return load_data(DataConfig(name="svhn", path=str(path), cache_dir=str(tmp_path / "c")))


def test_round_trip_with_ten_as_zero(tmp_path):
    written = write_svhn(tmp_path)
    splits = _load(tmp_path, tmp_path)
    np.testing.assert_array_equal(splits.train.images.numpy(), written.train_images)
    np.testing.assert_array_equal(splits.test.images.numpy(), written.test_images)
    np.testing.assert_array_equal(splits.train.labels.numpy(), written.train_labels)
    assert 0 in splits.train.labels.tolist() and 10 not in splits.train.labels.tolist()
    assert splits.train.classes == [str(d) for d in range(10)]


def test_pixel_layout_is_height_width_channel_index(tmp_path):
    """X[r, c, ch, i] is row r, column c, channel ch of image i (the official layout)."""
    from scipy.io import savemat

    stored = np.zeros((32, 32, 3, 1), np.uint8)
    stored[1, 2, 0, 0] = 77
    savemat(tmp_path / "train_32x32.mat", {"X": stored, "y": np.array([[3]], np.uint8)})
    savemat(tmp_path / "test_32x32.mat", {"X": stored, "y": np.array([[10]], np.uint8)})
    splits = _load(tmp_path, tmp_path)
    assert splits.train.images[0, 0, 1, 2] == 77 and splits.train.images.sum() == 77
    assert splits.test.labels.tolist() == [0]


def test_bad_files_are_one_line_errors(tmp_path):
    write_svhn(tmp_path)
    file = tmp_path / "test_32x32.mat"
    file.write_bytes(file.read_bytes()[:300])
    with pytest.raises(DataError, match="test_32x32.mat is truncated or corrupt") as info:
        _load(tmp_path, tmp_path)
    assert "\n" not in str(info.value)
    file.unlink()
    with pytest.raises(DataError, match="missing test_32x32.mat"):
        _load(tmp_path, tmp_path)
