"""Shards (equissl data prepare) and the streaming reader: what they write and read back, resume,
determinism of the streamed steps, crops cut at the source resolution, and one-line errors for
corrupt sources, shards and manifests."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from equissl.app.cli import main
from equissl.augment.crop import CropSpec, sample_crop_boxes
from equissl.data.imagefolder import read_imagefolder
from equissl.data.shards import prepare_shards, read_manifest, read_shards, shard_samples
from equissl.data.stream import ShardStream, StreamLoader, cut_crops, steps_per_epoch
from equissl.errors import DataError
from equissl.seeds import hashed_seed
from jpeg_folders import image_folder


def _as_set(images, labels):
    """Images and labels as a sorted list of (bytes, label): order-free comparison."""
    return sorted((im.numpy().tobytes(), int(y)) for im, y in zip(images, labels, strict=True))


def test_prepared_shards_hold_every_image_and_label_of_the_folder(tmp_path):
    src = image_folder(tmp_path / "src")
    manifest = prepare_shards(src, tmp_path / "shards", shard_size=7, workers=2)
    assert manifest["classes"] == ["c0", "c1", "c2"]
    assert manifest["train"]["count"] == 24 and manifest["test"]["count"] == 6  # 20% held out
    assert [s["count"] for s in manifest["train"]["shards"]] == [7, 7, 7, 3]
    assert read_manifest(tmp_path / "shards") == manifest
    kw = dict(size=16, cache_dir=tmp_path / "cache")
    direct, sharded = read_imagefolder(src, **kw), read_shards(tmp_path / "shards", **kw)
    for part in ("train", "test"):
        a, b = getattr(direct, part), getattr(sharded, part)
        assert _as_set(a.images, a.labels) == _as_set(b.images, b.labels)
    # the prepared order is shuffled: the first shard mixes classes
    first = shard_samples(tmp_path / "shards" / "train-000000.tar", 7)
    assert len({label for _, _, label in first}) > 1


def test_prepare_reads_a_zip_and_resumes_without_rewriting_finished_shards(tmp_path):
    src = image_folder(tmp_path / "src")
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(src.rglob("*.jpg")):
            z.write(path, path.relative_to(src).as_posix())
    out = tmp_path / "shards"
    assert main(["data", "prepare", f"src={archive}", f"out={out}", "shard_size=7"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    (out / "train-000002.tar").unlink()  # as if stopped before this shard was written
    (out / "manifest.json").unlink()
    prepare_shards(archive, out, shard_size=7, workers=1)
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after == before  # the same bytes again
    for name, stamp in stamps.items():
        if name != "train-000002.tar":
            assert (out / name).stat().st_mtime_ns == stamp, name  # not written again


def test_a_corrupt_source_image_stops_prepare_with_one_line_and_no_manifest(tmp_path, capsys):
    src = image_folder(tmp_path / "src")
    (src / "c1" / "3.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "shards"
    argv = ["data", "prepare", f"src={src}", f"out={out}", "workers=2", "shard_size=4"]
    assert main(argv) == 2  # in a pool of 2 processes: the others stop too
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot decode image" in err[0] and "c1/3.jpg" in err[0], err
    assert not (out / "manifest.json").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def _shards(tmp_path, **kw):
    prepare_shards(image_folder(tmp_path / "src", **kw), tmp_path / "shards", shard_size=4)
    return tmp_path / "shards"


def _pretrain(shards, tmp_path, *extra):
    """A streamed smoke pretraining on `shards` through the CLI: its exit status."""
    return main(
        [
            "pretrain", "simclr", "smoke", "data.name=imagefolder", f"data.path={shards}",
            "data.workers=1", "data.limit=null", "optim.batch_size=1", "eval.at_end=false",
            f"out_dir={tmp_path}", "name=run", *extra,
        ]
    )  # fmt: skip


def _one_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("equissl: error: "), err
    return err[0]


def test_a_truncated_shard_or_manifest_is_one_line_and_exit_2(tmp_path, capsys):
    shards = _shards(tmp_path)
    for shard in read_manifest(shards)["train"]["shards"]:  # whichever is read first
        path = shards / shard["file"]
        path.write_bytes(path.read_bytes()[:700])
    with pytest.raises(DataError, match=r"train-000001.tar is truncated or corrupt"):
        shard_samples(shards / "train-000001.tar", 4)
    for stream in ("true", "false"):  # streamed, and decoded into memory
        assert _pretrain(shards, tmp_path, f"data.stream={stream}") == 2
        assert "is truncated or corrupt" in _one_error(capsys)
    (shards / "manifest.json").write_text('{"format": "equissl-shards", "train": ')
    with pytest.raises(DataError, match=r"manifest.json is truncated or corrupt"):
        read_manifest(shards)
    assert _pretrain(shards, tmp_path) == 2
    assert "manifest.json is truncated or corrupt" in _one_error(capsys)


def test_a_corrupt_image_inside_a_shard_stops_streaming_with_one_line(tmp_path, capsys):
    shards = _shards(tmp_path)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in [("000000.jpg", b"garbage"), ("000000.cls", b"0")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    manifest = read_manifest(shards)
    for shard in manifest["train"]["shards"]:  # every shard: whichever is read first
        (shards / shard["file"]).write_bytes(buffer.getvalue())
    manifest["train"]["shards"] = [
        {"file": s["file"], "count": 1} for s in manifest["train"]["shards"]
    ]
    (shards / "manifest.json").write_text(json.dumps(manifest))
    assert _pretrain(shards, tmp_path) == 2
    assert _one_error(capsys).startswith("equissl: error: cannot decode image")


def _steps(dataset, workers, epoch=0, start=0):
    loader = StreamLoader(dataset, workers, lambda: (epoch, start))
    return list(loader)


def _same(a, b):
    assert [x["step"] for x in a] == [x["step"] for x in b]
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x["index"], y["index"]) and torch.equal(x["labels"], y["labels"])
        for cx, cy in zip(x["crops"], y["crops"], strict=True):
            assert torch.equal(cx, cy)


def test_streamed_steps_depend_on_seed_epoch_and_step_only(tmp_path):
    shards = _shards(tmp_path)  # 24 training samples in 6 shards of 4
    specs = [CropSpec(8), CropSpec(8), CropSpec(4, (0.05, 0.14))]
    dataset = ShardStream(shards, specs, batch_size=2, seed=5, slots=2)
    assert len(dataset) == 2 * (3 * 4 // 2)  # 2 slots of 3 shards, 6 steps each
    main_process = _steps(dataset, 0)
    _same(main_process, _steps(dataset, 2))  # the same steps read by 2 worker processes
    _same(main_process[5:], _steps(dataset, 2, start=5))  # a resumed epoch: its tail, exactly
    assert [b["crops"][2].shape for b in main_process[:1]] == [(2, 3, 4, 4)]
    seen = torch.cat([b["index"] for b in main_process])
    assert seen.unique().numel() == 24  # one epoch reads every sample once
    other = torch.cat([b["index"] for b in _steps(dataset, 0, epoch=1)])
    assert not torch.equal(seen, other) and torch.equal(seen.sort().values, other.sort().values)


def test_steps_per_epoch_is_what_every_slot_holds_in_any_order():
    assert steps_per_epoch([4, 4, 4, 3], 2, world=1, slots=2) == 2 * (7 // 2)  # 2 smallest
    assert steps_per_epoch([10] * 9, 4, world=2, slots=2) == 2 * (20 // 4)  # 9 // 4 = 2 shards
    with pytest.raises(DataError, match="fewer than 2 process"):
        steps_per_epoch([10, 10, 10], 4, world=2, slots=2)


def test_crops_are_cut_from_the_source_resolution():
    # A horizontal ramp: the value of column x is 4 x (64 columns), so a crop's values say
    # which source columns it came from.
    ramp = np.tile((np.arange(64) * 4).astype(np.uint8), (64, 1))
    image = np.stack([ramp, ramp.T, ramp], axis=2)
    specs = [CropSpec(8, (0.05, 0.14)), CropSpec(16, (1.0, 1.0), (1.0, 1.0))]
    seed = hashed_seed("3:1:17")
    small, whole = cut_crops(image, specs, torch.Generator().manual_seed(seed), channels=3)
    g = torch.Generator().manual_seed(seed)
    top, left, h, w = sample_crop_boxes(1, 64, 64, (0.05, 0.14), (3 / 4, 4 / 3), g)[0].tolist()
    assert 0.05 * 64 * 64 * 0.8 <= h * w <= 0.14 * 64 * 64 * 1.2  # a small crop of the source
    assert small.shape == (3, 8, 8) and whole.shape == (3, 16, 16)
    columns = small[0].astype(float).mean(0) / 4  # the source columns each output column read
    assert abs(columns[0] - (left + w / 16 - 0.5)) < 1.0
    assert abs(columns[-1] - (left + w - w / 16 - 0.5)) < 1.0
    rows = small[1].astype(float).mean(1) / 4
    assert abs(rows[0] - (top + h / 16 - 0.5)) < 1.0
    # the whole image resized: PIL's antialiased bilinear resize
    expected = np.asarray(Image.fromarray(image).resize((16, 16), Image.Resampling.BILINEAR))
    assert np.array_equal(whole, expected.transpose(2, 0, 1))
    grey = cut_crops(image, specs[:1], torch.Generator().manual_seed(seed), channels=1)[0]
    assert grey.shape == (1, 8, 8)
