"""Unlabelled pretraining: a flat folder of images (or a single folder) pretrains, and the
evaluation runs on a labelled set given separately (eval.data), or is skipped with one note."""

import json

import numpy as np
import pytest
import torch
from official_formats import encode_image

from equissl.app.cli import main
from equissl.data import load_image_dataset


def _flat(root, n=40, top="photos", as_zip=False):
    rng = np.random.default_rng(0)
    folder = root / top
    folder.mkdir(parents=True)
    for i in range(n):
        image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        (folder / f"img{i:03d}.png").write_bytes(encode_image(image, "PNG"))
    return folder


@pytest.mark.parametrize("point_at", ["folder", "parent"])
def test_a_flat_folder_reads_as_unlabelled_training_images(tmp_path, point_at):
    folder = _flat(tmp_path / "src")
    path = folder if point_at == "folder" else folder.parent  # flat, or one folder inside
    splits = load_image_dataset("imagefolder", path, cache_dir=tmp_path / "c")
    assert splits.train.images.shape == (40, 3, 16, 16)
    assert splits.train.labels.tolist() == [-1] * 40 and splits.train.classes == []
    assert len(splits.test) == 0 and splits.num_classes == 0
    some = load_image_dataset("imagefolder", path, cache_dir=tmp_path / "c", limit=10)
    kept = [
        int(torch.nonzero((splits.train.images == img).all((1, 2, 3)))[0, 0])
        for img in some.train.images
    ]
    assert len(kept) == 10 and kept == sorted(kept) and len(set(kept)) == 10  # a seeded subset


def test_unlabelled_pretraining_evaluates_on_eval_data_or_says_it_cannot(tmp_path, capsys):
    folder = _flat(tmp_path / "src", n=64)
    base = ["pretrain", "esimclr", "smoke", "data.name=imagefolder", f"data.path={folder}",
            "data.limit=null", f"out_dir={tmp_path / 'runs'}"]  # fmt: skip
    assert main([*base, "name=bare"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no labels" in err and "eval.data.name=" in err
    bare = json.loads((tmp_path / "runs" / "bare" / "results.json").read_text())
    assert "linear_acc" not in bare and bare["train_seconds"] > 0
    assert main([*base, "name=probed", "eval.data.name=digits"]) == 0
    probed = json.loads((tmp_path / "runs" / "probed" / "results.json").read_text())
    assert probed["eval_data"] == "digits" and "online_acc" not in probed
    assert 0 <= probed["linear_acc"] <= 100 and 0 <= probed["knn_acc"] <= 100
