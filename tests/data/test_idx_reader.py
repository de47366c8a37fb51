"""MNIST, FashionMNIST and KMNIST: the IDX format (gzip or raw), layouts, channels, errors."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from official_formats import idx_bytes, write_mnist

from equissl.app.config import DataConfig
from equissl.data import load_data
from equissl.data.idx import CLASSES, FOLDERS, parse_idx
from equissl.errors import DataError


def _load(path, tmp_path, name="mnist", **options):
    cfg = DataConfig(name=name, path=str(path), cache_dir=str(tmp_path / "c"), **options)
    return load_data(cfg)


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashionmnist", "kmnist"])
def test_round_trip_gzip_and_raw(tmp_path, gz, name):
    written = write_mnist(tmp_path, folder=f"{FOLDERS[name]}/raw", gz=gz)
    splits = _load(tmp_path, tmp_path, name, channels=1)  # finds <Name>/raw below the root
    np.testing.assert_array_equal(splits.train.images.numpy(), written.train_images)
    np.testing.assert_array_equal(splits.test.images.numpy(), written.test_images)
    np.testing.assert_array_equal(splits.train.labels.numpy(), written.train_labels)
    np.testing.assert_array_equal(splits.test.labels.numpy(), written.test_labels)
    assert splits.train.classes == CLASSES[name] and len(CLASSES[name]) == 10


def test_grey_is_replicated_to_three_channels(tmp_path):
    written = write_mnist(tmp_path, folder="flat")
    images = _load(tmp_path / "flat", tmp_path, channels=3).train.images.numpy()
    assert images.shape == (5, 3, 28, 28)
    for c in range(3):
        np.testing.assert_array_equal(images[:, c], written.train_images[:, 0])


def test_header_is_big_endian_dimensions():
    """The official header: 0x00 0x00 0x08 ndim, then each dimension as a big-endian uint32."""
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(array)
    assert data[:4] == b"\x00\x00\x08\x03" and data[4:8] == b"\x00\x00\x00\x02"
    np.testing.assert_array_equal(parse_idx(data, "x"), array)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: d[:-1], "bytes of values"),
        (lambda d: b"\x01" + d[1:], "magic number"),
        (lambda d: d[:2] + b"\x0d" + d[3:], "type code 0x0d"),
        (lambda d: d[:6], "cut short"),
    ],
)
def test_damaged_files_are_one_line_errors(tmp_path, damage, message):
    write_mnist(tmp_path, folder="raw", gz=False)
    file = tmp_path / "raw" / "train-images-idx3-ubyte"
    file.write_bytes(damage(file.read_bytes()))
    with pytest.raises(DataError, match=message) as info:
        _load(tmp_path, tmp_path)
    assert "\n" not in str(info.value) and "truncated or corrupt" in str(info.value)


def test_truncated_gzip_and_mismatched_counts(tmp_path):
    write_mnist(tmp_path, folder="a")
    file = tmp_path / "a" / "t10k-labels-idx1-ubyte.gz"
    file.write_bytes(file.read_bytes()[:-9])
    with pytest.raises(DataError, match="t10k-labels.*truncated or corrupt"):
        _load(tmp_path / "a", tmp_path)
    write_mnist(tmp_path, folder="b")
    labels = tmp_path / "b" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(idx_bytes(np.zeros(7, np.uint8))))
    with pytest.raises(DataError, match="3 images but 7 labels"):
        _load(tmp_path / "b", tmp_path)


def test_missing_files_name_the_expected_ones(tmp_path):
    with pytest.raises(DataError, match="no train-images-idx3-ubyte"):
        _load(tmp_path, tmp_path)
    write_mnist(tmp_path, folder="c")
    (tmp_path / "c" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing t10k-images-idx3-ubyte"):
        _load(tmp_path / "c", tmp_path)
