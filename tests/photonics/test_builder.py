"""The photonic dataset builder: seeded cells, shards, cache reuse, resume and one-line errors."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
import torch

from equissl.app.cli import main
from equissl.errors import DataError
from equissl.photonics import PhCSettings, dos_target
from equissl.photonics.dataset import (
    DatasetSpec,
    build_dataset,
    load_dataset,
    make_cells,
)

TINY = PhCSettings(order=2, k_grid=2, n_freq=40)


def _spec(n_labeled: int = 7, n_unlabeled: int = 9, shard_size: int = 4, **kw) -> DatasetSpec:
    return DatasetSpec("blob", n_labeled, n_unlabeled, shard_size=shard_size, settings=TINY, **kw)


def _same(a, b) -> bool:
    return all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("cells", "dos", "unlabeled"))


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("equissl: error: "), err
    return err


def test_a_cell_depends_only_on_seed_family_split_and_index():
    whole = make_cells("blob", "labeled", 0, 0, 6)
    assert torch.equal(whole[2:], make_cells("blob", "labeled", 0, 2, 6))
    assert not torch.equal(whole, make_cells("blob", "unlabeled", 0, 0, 6))
    assert not torch.equal(whole, make_cells("blob", "labeled", 1, 0, 6))
    pm = make_cells("pm", "labeled", 0, 0, 6)
    assert torch.equal(pm, pm.flip(-1)) and not torch.equal(pm, whole)


def test_same_data_for_any_worker_count_and_shard_size(tmp_path):
    one = build_dataset(_spec(shard_size=4), tmp_path / "a", workers=1, progress=False)
    two = build_dataset(_spec(shard_size=3), tmp_path / "b", workers=2, progress=False)
    assert len(one.computed) == 2 + 3 and len(two.computed) == 3 + 3
    a, b = load_dataset(one.path), load_dataset(two.path)
    assert _same(a, b)
    assert (
        a.cells.shape == (7, 32, 32) and a.dos.shape == (7, 40) and a.unlabeled.shape == (9, 32, 32)
    )
    expected = dos_target(make_cells("blob", "labeled", 0, 0, 7), TINY).float()
    torch.testing.assert_close(a.dos, expected)
    with np.load(one.path / "unlabeled-00000.npz") as shard:  # unlabelled cells carry no DOS
        assert sorted(shard.files) == ["cells", "index"]


def test_second_build_reuses_the_cache_and_a_deleted_shard_is_rebuilt(tmp_path, capsys):
    out = tmp_path / "data"
    first = build_dataset(_spec(), out, workers=1, progress=False)
    before = load_dataset(out)
    assert build_dataset(_spec(), out, workers=1).computed == []
    args = ["photonics", "build", "family=blob", "n_labeled=7", "n_unlabeled=9", "shard_size=4",
            f"out={out}", "order=2", "k_grid=2", "n_freq=40"]  # fmt: skip
    assert main(args) == 0
    assert "already complete" in capsys.readouterr().out

    (out / "labeled-00001.npz").unlink()
    (out / ".labeled-00001.npz.123.tmp").write_bytes(b"half-written")  # an interrupted write
    again = build_dataset(_spec(), out, workers=1, progress=False)
    assert again.computed == ["labeled-00001.npz"]
    assert not list(out.glob(".*.tmp"))
    assert _same(before, load_dataset(out))
    assert sorted(p.name for p in out.iterdir()) == sorted(["dataset.json", *first.computed])


def test_other_settings_in_the_same_folder_is_one_error(tmp_path, capsys):
    out = tmp_path / "data"
    build_dataset(_spec(), out, workers=1, progress=False)
    with pytest.raises(DataError, match="n_labeled: 7 there, 8 asked"):
        build_dataset(_spec(n_labeled=8), out, workers=1)
    args = ["photonics", "build", "family=blob", "n_labeled=7", "n_unlabeled=9", f"out={out}"]
    assert main(args) == 2  # default shard size and solver settings differ
    err = _one_error_line(capsys)
    assert "other settings" in err and "shard_size" in err and "settings" in err


def test_a_foreign_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        build_dataset(_spec(), tmp_path, workers=1)


def test_unwritable_cache_folder_is_one_error(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a regular file")
    with pytest.raises(DataError, match="cannot create the photonic dataset folder"):
        build_dataset(_spec(), blocker / "data", workers=1)
    args = ["photonics", "build", "family=blob", "n_labeled=2", "n_unlabeled=2"]
    assert main([*args, f"out={blocker / 'data'}"]) == 2
    _one_error_line(capsys)

    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # the sandbox runs as root
    assert main([*args, f"out={tmp_path / 'ro'}"]) == 2
    assert "is not writable" in _one_error_line(capsys)


def _write_shard(path, **arrays) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        (np.full((4, 32, 32), 0.5, np.float32), "below 1"),
        (np.full((4, 32, 32), np.nan, np.float32), "NaN"),
        (np.ones((4, 32, 31), np.float32), "square"),
    ],
)
def test_bad_cells_in_a_shard_are_one_error(tmp_path, cells, message):
    out = tmp_path / "data"
    build_dataset(_spec(n_labeled=4, n_unlabeled=4), out, workers=1, progress=False)
    _write_shard(out / "unlabeled-00000.npz", cells=cells, index=np.arange(4))
    with pytest.raises(DataError, match=message) as info:
        load_dataset(out)
    assert "\n" not in str(info.value) and "unlabeled-00000.npz" in str(info.value)


def test_corrupt_or_missing_files_are_one_error(tmp_path):
    out = tmp_path / "data"
    build_dataset(_spec(n_labeled=4, n_unlabeled=4), out, workers=1, progress=False)
    (out / "labeled-00000.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="corrupt photonic shard"):
        load_dataset(out)
    (out / "labeled-00000.npz").unlink()
    with pytest.raises(DataError, match="missing; run the build again"):
        load_dataset(out)
    (out / "dataset.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(DataError, match="format"):
        load_dataset(out)
    with pytest.raises(DataError, match="no photonic dataset"):
        load_dataset(tmp_path / "nowhere")
