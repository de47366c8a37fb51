"""ImageFolder reader: folders and zips, with and without split folders; decoding and errors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from official_formats import encode_image, write_imagefolder

import equissl.data.imagefolder as imagefolder
from equissl.config import DataConfig
from equissl.data import load_data
from equissl.errors import DataError


def _load(path: Path, tmp_path: Path, **options):
    cfg = DataConfig(name="imagefolder", path=str(path), cache_dir=str(tmp_path / "c"), **options)
    return load_data(cfg)


def _check(splits, written) -> None:
    assert splits.train.classes == written.classes
    for part, images, labels in (
        (splits.train, written.train_images, written.train_labels),
        (splits.test, written.test_images, written.test_labels),
    ):
        assert part.images.dtype == torch.uint8 and part.images.is_contiguous()
        np.testing.assert_array_equal(part.images.numpy(), images)
        np.testing.assert_array_equal(part.labels.numpy(), labels)


@pytest.mark.parametrize("as_zip", [False, True])
def test_split_layout_png_round_trip(tmp_path, as_zip):
    written = write_imagefolder(tmp_path / "pets", top="pets", as_zip=as_zip)
    splits = _load(written.path, tmp_path)
    assert splits.train.images.shape == (9, 3, 5, 6)  # (N, C, H, W) of 5-high, 6-wide images
    assert splits.test.images.shape == (6, 3, 5, 6)
    _check(splits, written)


def test_val_folder_is_the_test_split(tmp_path):
    written = write_imagefolder(tmp_path / "d", per_class={"train": 2, "val": 1})
    splits = _load(written.path, tmp_path, channels=3)
    assert len(splits.test) == 3
    np.testing.assert_array_equal(splits.train.images.numpy(), written.train_images)


@pytest.mark.parametrize("as_zip", [False, True])
def test_unsplit_layout_is_split_20_percent_per_class(tmp_path, as_zip):
    written = write_imagefolder(tmp_path / "d", per_class={"all": 10}, split=False, as_zip=as_zip)
    splits = _load(written.path, tmp_path)
    assert splits.train.labels.bincount().tolist() == [8, 8, 8]
    assert splits.test.labels.bincount().tolist() == [2, 2, 2]
    every = np.concatenate([splits.train.images.numpy(), splits.test.images.numpy()])
    keys = sorted(map(bytes, every.reshape(len(every), -1)))
    assert keys == sorted(map(bytes, written.train_images.reshape(30, -1)))  # a partition
    again = _load(written.path, tmp_path / "fresh")
    assert torch.equal(again.test.images, splits.test.images)  # seeded


def test_jpeg_decodes_close_to_source(tmp_path):
    gradient = np.linspace(0, 255, 16 * 16 * 3).reshape(16, 16, 3).astype(np.uint8)
    for part in ("train", "test"):
        for name in ("a", "b"):
            (tmp_path / "d" / part / name).mkdir(parents=True)
            (tmp_path / "d" / part / name / "0.jpg").write_bytes(encode_image(gradient, "JPEG"))
    splits = _load(tmp_path / "d", tmp_path)
    assert splits.train.images.shape == (2, 3, 16, 16)
    error = (splits.train.images[0].permute(1, 2, 0).float() - torch.from_numpy(gradient)).abs()
    assert error.mean() < 4


def test_grayscale_png(tmp_path):
    written = write_imagefolder(tmp_path / "d", shape=(4, 4))
    grey = _load(written.path, tmp_path, channels=1)
    np.testing.assert_array_equal(grey.train.images.numpy(), written.train_images)
    rgb = _load(written.path, tmp_path, channels=3)
    assert rgb.train.images.shape == (9, 3, 4, 4)
    assert torch.equal(rgb.train.images, grey.train.images.expand(-1, 3, -1, -1))


def test_mixed_sizes_need_size(tmp_path):
    written = write_imagefolder(tmp_path / "d")
    odd = written.path / "test" / "dog" / "0001.png"
    odd.write_bytes(encode_image(np.zeros((7, 3, 3), np.uint8), "PNG"))
    with pytest.raises(DataError, match="differ in size.*test/dog/0001.png is 3x7.*data.size=N"):
        _load(written.path, tmp_path)
    splits = _load(written.path, tmp_path, size=4)
    assert splits.train.images.shape == (9, 3, 4, 4) and splits.test.images.shape == (6, 3, 4, 4)
    assert int(splits.test.images[3].max()) == 0  # the resized black image (dog, second file)


def test_decoding_in_a_process_pool_matches(tmp_path, monkeypatch):
    written = write_imagefolder(tmp_path / "d", as_zip=True)
    monkeypatch.setattr(imagefolder, "POOL_MIN_FILES", 0)
    monkeypatch.setattr(imagefolder, "CHUNK", 4)
    monkeypatch.setattr(imagefolder.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    _check(_load(written.path, tmp_path), written)


def test_corrupt_png_is_named(tmp_path):
    written = write_imagefolder(tmp_path / "d")
    bad = written.path / "train" / "emu" / "0002.png"
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(DataError) as excinfo:
        _load(written.path, tmp_path)
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith("cannot decode image") and "train/emu/0002.png" in message


def test_corrupt_and_truncated_zip(tmp_path):
    written = write_imagefolder(tmp_path / "d", as_zip=True)
    data = bytearray(written.path.read_bytes())
    written.path.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(DataError, match=r"d\.zip is truncated or corrupt"):
        _load(written.path, tmp_path)
    with zipfile.ZipFile(written.path, "w") as archive:  # stored, so a flipped byte fails the CRC
        archive.writestr("train/a/0.png", encode_image(np.zeros((4, 4, 3), np.uint8), "PNG"))
        archive.writestr("test/a/0.png", encode_image(np.zeros((4, 4, 3), np.uint8), "PNG"))
    data = bytearray(written.path.read_bytes())
    data[60] ^= 0xFF  # inside the first member's data
    written.path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"d\.zip:.*0\.png|cannot decode image") as excinfo:
        _load(written.path, tmp_path)
    assert "\n" not in str(excinfo.value)


def test_layout_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no JPEG or PNG images in .*empty"):
        _load(tmp_path / "empty", tmp_path)
    written = write_imagefolder(tmp_path / "d", per_class={"train": 2})
    with pytest.raises(DataError, match="no test \\(or val\\) images"):
        _load(written.path, tmp_path)
    extra = write_imagefolder(tmp_path / "e")
    (extra.path / "test" / "cat" / "0000.png").rename(extra.path / "test" / "yak.png")
    (extra.path / "test" / "yak").mkdir()
    (extra.path / "test" / "yak.png").rename(extra.path / "test" / "yak" / "0.png")
    with pytest.raises(DataError, match="test class folder 'yak'"):
        _load(extra.path, tmp_path)
