"""ImageFolder reader: folders and zips, with and without split folders; decoding and errors."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from official_formats import encode_image, write_imagefolder
from PIL import Image

import equissl.data.imagefolder as imagefolder
from equissl.app.config import DataConfig
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


WIDE = np.array(  # 16-bit values: ends, near the rounding points of value / 257, a gradient
    [[0, 1, 128, 129, 257, 385, 386, 32767], [32768, 65278, 65279, 65407, 65408, 65534, 65535, 0]]
    + [np.linspace(0, 65535, 8).round().tolist()],
    dtype=np.uint16,
)


def _to_8_bits(values: np.ndarray) -> np.ndarray:
    """The expected 8-bit values, by Python's round of value * 255 / 65535, one at a time."""
    clipped = [min(max(int(v), 0), 65535) for v in values.ravel()]
    return np.array([round(v * 255 / 65535) for v in clipped], np.uint8).reshape(values.shape)


def _wide_png(values: np.ndarray, mode: str) -> bytes:
    if mode == "I;16":
        image = Image.fromarray(values)
    else:  # big-endian samples, the PNG byte order
        image = Image.frombytes("I;16B", values.shape[::-1], values.astype(">u2").tobytes())
    assert image.mode == mode
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("as_zip", [False, True])
@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_16_bit_png_is_scaled_to_8_bits(tmp_path, as_zip, mode):
    expected = _to_8_bits(WIDE)
    assert expected[0].tolist() == [0, 0, 0, 1, 1, 1, 2, 127] and expected[1, -2] == 255
    folder = tmp_path / "d"
    for part, flip in (("train", False), ("test", True)):
        for name in ("a", "b"):
            values = WIDE[::-1] if flip else WIDE
            (folder / part / name).mkdir(parents=True)
            (folder / part / name / "0.png").write_bytes(_wide_png(values, mode))
    with Image.open(folder / "train" / "a" / "0.png") as image:
        assert image.mode == "I;16"  # how Pillow reads a 16-bit grey PNG back
    path = folder
    if as_zip:
        path = tmp_path / "d.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for file in sorted(folder.rglob("*.png")):
                archive.write(file, file.relative_to(folder).as_posix())
    grey = _load(path, tmp_path, channels=1)
    assert grey.train.images.shape == (2, 1, *WIDE.shape)
    for image in grey.train.images:
        np.testing.assert_array_equal(image[0].numpy(), expected)
    for image in grey.test.images:
        np.testing.assert_array_equal(image[0].numpy(), expected[::-1])
    rgb = _load(path, tmp_path, channels=3)
    assert rgb.train.images.shape == (2, 3, *WIDE.shape)
    assert torch.equal(rgb.train.images, grey.train.images.expand(-1, 3, -1, -1))


def test_wide_modes_to_8_bits():
    for mode in ("I;16", "I;16B", "I;16L"):
        dtype = ">u2" if mode == "I;16B" else "<u2"
        image = Image.frombytes(mode, WIDE.shape[::-1], WIDE.astype(dtype).tobytes())
        np.testing.assert_array_equal(imagefolder.to_array(image), _to_8_bits(WIDE))
    signed = np.array([[-70000, -1, 0, 257], [65535, 65536, 10**6, 40000]], np.int32)
    image = Image.fromarray(signed)
    assert image.mode == "I"
    result = imagefolder.to_array(image)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, [[0, 0, 0, 1], [255, 255, 255, 156]])
    np.testing.assert_array_equal(result, _to_8_bits(signed))


def _warnings(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if "warning" in line]


@pytest.mark.parametrize("as_zip", [False, True])
def test_empty_class_folders_warn_and_are_skipped(tmp_path, capsys, as_zip):
    written = write_imagefolder(tmp_path / "d")
    (written.path / "train" / "yak").mkdir()  # no files at all
    (written.path / "test" / "dog" / "0000.png").unlink()
    (written.path / "test" / "dog" / "0001.png").unlink()
    (written.path / "test" / "dog" / "notes.txt").write_text("no images here")
    (written.path / "train" / ".hidden").mkdir()
    path = written.path
    if as_zip:
        path = tmp_path / "d.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for item in sorted(written.path.rglob("*")):
                archive.write(item, item.relative_to(written.path).as_posix())
        assert "train/yak/" in zipfile.ZipFile(path).namelist()
    splits = _load(path, tmp_path)
    (line,) = _warnings(capsys)
    assert line.startswith("equissl: warning: ignoring 2 class folder(s) without JPEG or PNG")
    assert line.endswith(": test/dog, train/yak; add images or remove the folder(s)")
    assert splits.train.classes == ["cat", "dog", "emu"]
    assert splits.test.labels.tolist() == [0, 0, 2, 2]


def test_empty_class_folder_in_unsplit_layout_below_a_top_folder(tmp_path, capsys):
    written = write_imagefolder(tmp_path / "d", per_class={"all": 5}, split=False, top="pets")
    for name in ("yak", "zebra"):
        (written.path / "pets" / name).mkdir()
    (written.path / "pets" / "cat" / "empty").mkdir()  # below the class level: not a class
    splits = _load(written.path, tmp_path)
    (line,) = _warnings(capsys)
    assert "ignoring 2 class folder(s)" in line and line.endswith(
        ": pets/yak, pets/zebra; add images or remove the folder(s)"
    )
    assert splits.train.classes == ["cat", "dog", "emu"] and len(splits.train) == 12


def test_no_warning_without_empty_folders(tmp_path, capsys):
    written = write_imagefolder(tmp_path / "d")
    _load(written.path, tmp_path)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("as_zip", [False, True])
def test_random_bytes_png_is_named(tmp_path, as_zip):
    written = write_imagefolder(tmp_path / "d")
    (written.path / "train" / "dog" / "x.png").write_bytes(np.random.default_rng(0).bytes(300))
    path = written.path
    if as_zip:
        path = tmp_path / "d.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for file in sorted(written.path.rglob("*.png")):
                archive.write(file, file.relative_to(written.path).as_posix())
    with pytest.raises(DataError) as excinfo:
        _load(path, tmp_path)
    message = str(excinfo.value)
    assert "\n" not in message
    assert message == (
        f"cannot decode image {path.resolve()}/train/dog/x.png (not a JPEG or PNG image); "
        "replace or delete the file"
    )
