"""STL-10 binary reader: column-major images, 1-based labels, unlabeled split, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from official_formats import write_stl10

from equissl.app.config import DataConfig
from equissl.data import load_data
from equissl.errors import DataError


def _load(path: Path, tmp_path: Path, **options):
    cfg = DataConfig(name="stl10", path=str(path), cache_dir=str(tmp_path / "c"), **options)
    return load_data(cfg)


def test_round_trip_pixels_labels_classes(tmp_path):
    written = write_stl10(tmp_path)
    splits = _load(tmp_path, tmp_path)  # the folder holding stl10_binary/
    assert splits.train.images.shape == (4, 3, 96, 96)
    assert splits.train.images.dtype == torch.uint8 and splits.train.images.is_contiguous()
    np.testing.assert_array_equal(splits.train.images.numpy(), written.train_images)
    np.testing.assert_array_equal(splits.test.images.numpy(), written.test_images)
    np.testing.assert_array_equal(splits.train.labels.numpy(), written.train_labels)
    np.testing.assert_array_equal(splits.test.labels.numpy(), written.test_labels)
    assert splits.train.classes == written.classes
    assert splits.unlabeled is None


def test_column_major_storage(tmp_path):
    """Byte k of an image's channel is column k // 96, row k % 96 (the official layout)."""
    folder = tmp_path / "stl10_binary"
    write_stl10(tmp_path, n_train=1, n_test=1, n_unlabeled=1)
    stored = np.zeros(3 * 96 * 96, dtype=np.uint8)
    stored[1] = 200  # channel 0, column 0, row 1
    stored[96 * 96 + 96 * 5 + 2] = 100  # channel 1, column 5, row 2
    (folder / "train_X.bin").write_bytes(stored.tobytes())
    image = _load(folder, tmp_path).train.images[0]
    assert image[0, 1, 0] == 200 and image[0, 0, 1] == 0
    assert image[1, 2, 5] == 100 and image[1, 5, 2] == 0
    assert int(image.sum()) == 300


def test_unlabeled_only_when_asked(tmp_path):
    written = write_stl10(tmp_path)
    splits = _load(written.path, tmp_path, unlabeled=True)
    np.testing.assert_array_equal(splits.unlabeled.images.numpy(), written.unlabeled)
    assert splits.unlabeled.labels.tolist() == [-1, -1]
    (written.path / "unlabeled_X.bin").unlink()
    assert _load(written.path, tmp_path).unlabeled is None
    with pytest.raises(DataError, match="missing unlabeled_X.bin"):
        _load(written.path, tmp_path, unlabeled=True)


@pytest.mark.parametrize("cut", [100, 3 * 96 * 96])
def test_truncated_bin(tmp_path, cut):
    written = write_stl10(tmp_path)
    data = written.path / "train_X.bin"
    data.write_bytes(data.read_bytes()[:-cut])
    with pytest.raises(DataError) as excinfo:
        _load(written.path, tmp_path)
    message = str(excinfo.value)
    assert "\n" not in message
    assert "truncated or corrupt" in message and "re-download" in message
    assert ("train_X.bin" if cut == 100 else "train_y.bin") in message


def test_missing_files(tmp_path):
    written = write_stl10(tmp_path)
    (written.path / "test_y.bin").unlink()
    with pytest.raises(DataError, match="missing test_y.bin in .*stl10_binary"):
        _load(written.path, tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="missing train_X.bin"):
        _load(empty, tmp_path)
