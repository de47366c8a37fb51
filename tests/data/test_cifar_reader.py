"""CIFAR-10/100 python-pickle reader: folder, parent folder and .tar.gz; errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from official_formats import make_tar_gz, write_cifar10, write_cifar100

from equissl.app.config import DataConfig
from equissl.data import load_data
from equissl.errors import DataError


def _load(path: Path | None, tmp_path: Path, name: str = "cifar10"):
    return load_data(
        DataConfig(
            name=name, path=None if path is None else str(path), cache_dir=str(tmp_path / "c")
        )
    )


def _check(splits, written) -> None:
    for part, images, labels in (
        (splits.train, written.train_images, written.train_labels),
        (splits.test, written.test_images, written.test_labels),
    ):
        assert part.images.dtype == torch.uint8 and part.labels.dtype == torch.int64
        assert part.images.is_contiguous()
        np.testing.assert_array_equal(part.images.numpy(), images)
        np.testing.assert_array_equal(part.labels.numpy(), labels)
        assert part.classes == written.classes
    assert splits.unlabeled is None


def _one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_cifar10_folder_round_trips_pixels_and_labels(tmp_path):
    written = write_cifar10(tmp_path / "src")
    splits = _load(written.path, tmp_path)
    assert splits.train.images.shape == (15, 3, 32, 32)
    assert splits.test.images.shape == (4, 3, 32, 32)
    _check(splits, written)
    # CHW rows: byte 1024 + 32 + 2 of a row is channel 1 (green), row 1, column 2
    raw = written.train_images.reshape(15, 3072)
    assert splits.train.images[0, 1, 1, 2] == raw[0, 1024 + 32 + 2]
    assert splits.num_classes == 10 and splits.image_size == 32 and splits.channels == 3


def test_cifar10_parent_folder_and_tar_gz(tmp_path):
    written = write_cifar10(tmp_path / "src")
    _check(_load(tmp_path / "src", tmp_path), written)
    archive = make_tar_gz(written.path, tmp_path / "cifar-10-python.tar.gz")
    _check(_load(archive, tmp_path), written)


def test_cifar100_folder_and_tar_gz(tmp_path):
    written = write_cifar100(tmp_path / "src")
    splits = _load(written.path, tmp_path, "cifar100")
    _check(splits, written)
    assert splits.num_classes == 100 and splits.train.classes[7] == "class_07"
    archive = make_tar_gz(written.path, tmp_path / "cifar-100-python.tar.gz")
    _check(_load(archive, tmp_path, "cifar100"), written)


def test_missing_path_and_not_found(tmp_path):
    with pytest.raises(DataError) as excinfo:
        _load(None, tmp_path)
    assert _one_line_error(excinfo) == "data.path is required for cifar10; pass data.path=..."
    with pytest.raises(DataError, match="not found") as excinfo:
        _load(tmp_path / "nowhere", tmp_path)
    assert "nowhere" in _one_line_error(excinfo)
    with pytest.raises(DataError, match="no cifar-10-batches-py/") as excinfo:
        _load(tmp_path, tmp_path)  # an existing folder without the dataset


def test_missing_file_is_named(tmp_path):
    written = write_cifar10(tmp_path / "src")
    (written.path / "batches.meta").unlink()
    with pytest.raises(DataError) as excinfo:
        _load(written.path, tmp_path)
    message = _one_line_error(excinfo)
    assert "missing batches.meta" in message and "data_batch_1" in message


def test_truncated_pickle(tmp_path):
    written = write_cifar10(tmp_path / "src")
    batch = written.path / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:2000])
    with pytest.raises(DataError) as excinfo:
        _load(written.path, tmp_path)
    message = _one_line_error(excinfo)
    assert "data_batch_3 is truncated or corrupt" in message and "re-download" in message


def test_truncated_tar_gz(tmp_path):
    written = write_cifar10(tmp_path / "src")
    archive = make_tar_gz(written.path, tmp_path / "cifar-10-python.tar.gz")
    archive.write_bytes(archive.read_bytes()[:-3000])
    with pytest.raises(DataError, match="truncated or corrupt") as excinfo:
        _load(archive, tmp_path)
    assert "cifar-10-python.tar.gz" in _one_line_error(excinfo)


def test_pickle_with_foreign_objects_is_refused(tmp_path):
    written = write_cifar10(tmp_path / "src")
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (written.path / "test_batch").write_bytes(pickle.dumps({b"data": Exploit()}, protocol=2))
    with pytest.raises(DataError, match="test_batch is truncated or corrupt"):
        _load(written.path, tmp_path)
    assert not marker.exists()


def test_cifar100_coarse_labels_are_the_superclasses(tmp_path):
    """`data.labels=coarse` reads coarse_labels and coarse_label_names (20 superclasses)."""
    written = write_cifar100(tmp_path)
    cfg = DataConfig(name="cifar100", path=str(tmp_path), cache_dir=str(tmp_path / "c"))
    fine = load_data(cfg)
    cfg.labels = "coarse"
    coarse = load_data(cfg)  # a separate cache entry: not the fine labels again
    np.testing.assert_array_equal(coarse.train.labels.numpy(), written.train_labels // 5)
    np.testing.assert_array_equal(coarse.test.labels.numpy(), written.test_labels // 5)
    np.testing.assert_array_equal(fine.train.labels.numpy(), written.train_labels)
    assert coarse.train.classes == [f"super_{i:02d}" for i in range(20)]
    assert torch.equal(coarse.train.images, fine.train.images)
    with pytest.raises(DataError, match="data.labels=coarse needs data.name=cifar100"):
        load_data(DataConfig(name="cifar10", path=str(tmp_path), labels="coarse"))
