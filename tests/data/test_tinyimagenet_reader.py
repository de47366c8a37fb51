"""Tiny-ImageNet: training folders, validation labelled by val_annotations.txt, sorted wnids,
folder or zip, errors."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from official_formats import write_tinyimagenet

from equissl.app.config import DataConfig
from equissl.data import load_data
from equissl.errors import DataError


def _load(path, tmp_path):
    return load_data(DataConfig(name="tinyimagenet", path=str(path), cache_dir=str(tmp_path / "c")))


@pytest.mark.parametrize("as_zip", [False, True])
def test_round_trip_folder_and_zip(tmp_path, as_zip):
    written = write_tinyimagenet(tmp_path, as_zip=as_zip)
    splits = _load(written.path if as_zip else tmp_path, tmp_path)
    np.testing.assert_array_equal(splits.train.images.numpy(), written.train_images)
    np.testing.assert_array_equal(splits.test.images.numpy(), written.test_images)
    np.testing.assert_array_equal(splits.train.labels.numpy(), written.train_labels)
    np.testing.assert_array_equal(splits.test.labels.numpy(), written.test_labels)
    assert splits.train.classes == ["goldfish", "n02099601", "zebra crossing"]
    assert splits.train.images.shape == (6, 3, 64, 64) and len(splits.test.labels) == 5


def test_labels_follow_the_sorted_wnids_not_the_file_order(tmp_path):
    written = write_tinyimagenet(tmp_path, per_class=1)
    splits = _load(written.path, tmp_path)  # the extracted folder itself
    # wnids.txt lists n09999999 first; sorted, it is the last class.
    assert splits.test.labels.tolist() == [2, 0, 1, 2, 0]


def test_bad_sources_are_one_line_errors(tmp_path):
    written = write_tinyimagenet(tmp_path)
    annotations = written.path / "val" / "val_annotations.txt"
    annotations.write_text(annotations.read_text() + "val_9.JPEG\tn00000000\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match="line 6 names no known wnid"):
        _load(tmp_path, tmp_path)
    annotations.write_text("val_7.JPEG\tn01443537\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match="missing tiny-imagenet-200/val/images/val_7.JPEG"):
        _load(tmp_path, tmp_path)
    (written.path / "wnids.txt").unlink()
    with pytest.raises(DataError, match="no wnids.txt"):
        _load(tmp_path, tmp_path)
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError, match="broken.zip is truncated or corrupt"):
        _load(bad, tmp_path)


def test_a_damaged_image_names_its_file(tmp_path):
    written = write_tinyimagenet(tmp_path, as_zip=True)
    with zipfile.ZipFile(written.path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    name = "tiny-imagenet-200/val/images/val_1.JPEG"
    members[name] = members[name][:40]
    with zipfile.ZipFile(written.path, "w") as archive:
        for n, data in members.items():
            archive.writestr(n, data)
    with pytest.raises(DataError, match="val_1.JPEG") as info:
        _load(written.path, tmp_path)
    assert "\n" not in str(info.value)
