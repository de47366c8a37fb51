"""Decode cache: reuse, invalidation by source changes and options, corrupt files, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from official_formats import write_cifar10, write_imagefolder

import equissl.data.cache as cache
import equissl.data.cifar as cifar
import equissl.data.imagefolder as imagefolder
from equissl.app.config import DataConfig
from equissl.data import load_data


def _cfg(path: Path, tmp_path: Path, name: str = "cifar10", **options) -> DataConfig:
    return DataConfig(name=name, path=str(path), cache_dir=str(tmp_path / "cache"), **options)


def _fail(*args, **kwargs):
    raise AssertionError("decoded again instead of using the cache")


def test_second_load_uses_the_cache(tmp_path, monkeypatch):
    written = write_cifar10(tmp_path / "src")
    first = load_data(_cfg(written.path, tmp_path))
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".npz"]
    monkeypatch.setattr(cifar, "_read_folder", _fail)
    second = load_data(_cfg(written.path, tmp_path))
    np.testing.assert_array_equal(second.train.images.numpy(), written.train_images)
    np.testing.assert_array_equal(second.test.labels.numpy(), first.test.labels.numpy())
    assert second.train.classes == written.classes and second.name == "cifar10"
    assert second.train.images.is_contiguous()


def test_changed_source_is_read_again(tmp_path):
    written = write_cifar10(tmp_path / "src")
    load_data(_cfg(written.path, tmp_path))
    replacement = write_cifar10(tmp_path / "other", seed=5)
    batch = written.path / "data_batch_1"
    batch.write_bytes((replacement.path / "data_batch_1").read_bytes())
    stat = batch.stat()
    os.utime(batch, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    reloaded = load_data(_cfg(written.path, tmp_path))
    np.testing.assert_array_equal(reloaded.train.images[:3].numpy(), replacement.train_images[:3])
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_key_depends_on_stat_options_and_reader(tmp_path):
    source = tmp_path / "f"
    source.write_bytes(b"abc")
    key = cache.cache_key("cifar10", [source], {})
    assert key == cache.cache_key("cifar10", [source], {})
    assert key != cache.cache_key("cifar100", [source], {})
    assert key != cache.cache_key("cifar10", [source], {"size": 64})
    source.write_bytes(b"abcd")
    assert key != cache.cache_key("cifar10", [source], {})


def test_imagefolder_cache_and_size_option(tmp_path, monkeypatch):
    written = write_imagefolder(tmp_path / "d", as_zip=True)
    load_data(_cfg(written.path, tmp_path, "imagefolder"))
    monkeypatch.setattr(imagefolder, "decode_files", _fail)
    again = load_data(_cfg(written.path, tmp_path, "imagefolder"))
    np.testing.assert_array_equal(again.train.images.numpy(), written.train_images)
    with pytest.raises(AssertionError, match="decoded again"):
        load_data(_cfg(written.path, tmp_path, "imagefolder", size=8))  # another key


def test_unreadable_cache_file_is_replaced(tmp_path, capsys):
    written = write_cifar10(tmp_path / "src")
    load_data(_cfg(written.path, tmp_path))
    (cached,) = (tmp_path / "cache").iterdir()
    cached.write_bytes(cached.read_bytes()[:500])
    capsys.readouterr()
    splits = load_data(_cfg(written.path, tmp_path))
    (line,) = capsys.readouterr().err.splitlines()  # one line, shown even by the CLI
    assert line.startswith(f"equissl: warning: ignoring unreadable cache file {cached}")
    np.testing.assert_array_equal(splits.train.images.numpy(), written.train_images)
    assert cached.stat().st_size > 500  # written again, whole
    cache.load_splits(cached, "cifar10")


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    written = write_cifar10(tmp_path / "src")
    splits = load_data(_cfg(written.path, tmp_path))

    def broken_savez(handle, **arrays):
        handle.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(cache.np, "savez", broken_savez)
    target = tmp_path / "new" / "x.npz"
    with pytest.raises(RuntimeError):
        cache.save_splits(target, splits)
    assert list(target.parent.iterdir()) == []


def test_default_folder_is_the_users_cache_not_the_working_directory(tmp_path, monkeypatch):
    """EQUISSL_CACHE, else XDG_CACHE_HOME/equissl, else ~/.cache/equissl; null cache_dir uses
    it, so a run from another folder finds the decoded set."""
    monkeypatch.delenv("EQUISSL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.default_cache_dir() == tmp_path / "xdg" / "equissl"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.default_cache_dir() == tmp_path / "home" / ".cache" / "equissl"
    monkeypatch.setenv("EQUISSL_CACHE", str(tmp_path / "mine"))
    assert cache.default_cache_dir() == tmp_path / "mine"

    write_cifar10(tmp_path / "src")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    load_data(DataConfig(name="cifar10", path=str(tmp_path / "src")))
    assert len(list((tmp_path / "mine").glob("cifar10-*.npz"))) == 1
    assert not (elsewhere / ".cache").exists()
