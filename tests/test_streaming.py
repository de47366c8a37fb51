"""Pretraining streamed from shards: two DDP processes read disjoint samples that cover the epoch,
data.stream=auto says what it chose, and the ImageNet presets (E-SSL's and CARE's ImageNet-100)
train on the streaming path at smoke scale, on a tiny generated folder of JPEGs."""

from __future__ import annotations

import functools
import json

import pytest
import torch
import torch.distributed as dist

from equissl.app import streaming
from equissl.app.cli import main
from equissl.app.config import build_config
from equissl.augment.crop import CropSpec
from equissl.data.shards import prepare_shards, read_manifest
from equissl.data.stream import ShardStream, StreamLoader, epoch_shards
from jpeg_folders import image_folder
from test_distributed import _on_each_rank


def _read_epoch(folder: str, rank: int, world: int) -> list[list[int]]:
    """One epoch of this rank's stream from `folder` (1 worker process); every rank's indices,
    gathered."""
    dataset = ShardStream(
        folder, [CropSpec(8)], batch_size=3, seed=7, rank=dist.get_rank(), world=world, slots=1
    )
    loader = StreamLoader(dataset, workers=1, position=lambda: (2, 0))
    mine = [int(i) for batch in loader for i in batch["index"]]
    everyone: list = [None] * world
    dist.all_gather_object(everyone, mine)
    return everyone


def test_two_ddp_processes_read_disjoint_samples_covering_the_epoch(tmp_path):
    src = image_folder(tmp_path / "src", classes=2, per_class=15)  # 24 training images
    prepare_shards(src, tmp_path / "shards", shard_size=6, workers=1)  # 4 shards of 6
    ranks = _on_each_rank(functools.partial(_read_epoch, str(tmp_path / "shards")), tmp_path)
    assert [len(r) for r in ranks] == [12, 12]  # equal steps: 4 of 3 samples each
    assert not set(ranks[0]) & set(ranks[1])  # disjoint
    assert sorted(ranks[0] + ranks[1]) == list(range(24))  # together: the whole epoch
    # rank r read the shards r, r + 2 of the epoch's shard order
    shards = read_manifest(tmp_path / "shards")["train"]["shards"]
    starts = [6 * int(s["file"][6:12]) for s in shards]  # prepared indices start at 6 x shard
    for rank in range(2):
        (numbers,) = epoch_shards(4, 7, 2, rank, 2, 1)
        expected = {starts[k] + i for k in numbers for i in range(6)}
        assert set(ranks[rank]) == expected


def test_auto_keeps_a_small_folder_resident_and_streams_shards_or_a_large_set(
    tmp_path, monkeypatch
):
    src = image_folder(tmp_path / "src")
    said: list[str] = []
    cfg = build_config([], ["data.name=imagefolder", f"data.path={src}", "data.size=16"])
    assert streaming.stream_source(cfg, said.append) is None
    assert said[-1].startswith("data: resident") and "data.stream=auto" in said[-1]
    # the same folder with too little memory free: prepared into the cache, then streamed
    monkeypatch.setattr(streaming, "available_memory", lambda: 1000)
    cfg.data.cache_dir = str(tmp_path / "cache")
    folder = streaming.stream_source(cfg, said.append)
    assert folder.parent == tmp_path / "cache" and read_manifest(folder)["train"]["count"] == 24
    assert said[-1].startswith(f"data: streaming from {folder}") and "over half" in said[-1]
    cfg.data.path = str(folder)  # a shard folder streams whatever memory is free
    monkeypatch.setattr(streaming, "available_memory", lambda: 1 << 50)
    assert streaming.stream_source(cfg, said.append) == folder
    cfg.data.stream = "false"
    assert streaming.stream_source(cfg, said.append) is None
    assert said[-1].startswith("data: resident")


SMOKE = [  # the ImageNet recipes at smoke scale: tiny crops, narrow heads, one short epoch
    "data.name=imagefolder", "data.stream=true", "data.size=null", "data.limit=null",
    "data.workers=1", "augment.size=16", "optim.batch_size=8", "backbone.width=4",
    "eval.linear.augmented.epochs=1", "eval.linear.augmented.batch_size=16",
    "eval.linear.augmented.test_resize=18", "eval.linear.augmented.test_crop=16",
    "trainer.accelerator=cpu", "trainer.precision=32",
]  # fmt: skip


@pytest.mark.parametrize(
    "preset, extra",
    [
        ("care-imagenet100-paper", ["method.equivariance.0.size=16", "method.equivariance.0.chunks=2"]),
        (
            "imagenet-esimclr",
            ["method.equivariance.0.size=8", "method.proj_hidden=32", "method.proj_dim=16",
             "method.equivariance.0.head_hidden=32", "method.equivariance.0.head_bottleneck=8"],
        ),
    ],
)  # fmt: skip
def test_imagenet_presets_stream_at_smoke_scale(preset, extra, tmp_path, capsys):
    src = image_folder(tmp_path / "src", classes=2, per_class=20, size=(40, 48))
    argv = [
        "pretrain", preset, "smoke", *SMOKE, *extra, f"data.path={src}",
        f"data.cache_dir={tmp_path / 'cache'}", f"out_dir={tmp_path}", "name=run",
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "data: streaming from" in out and "data.stream=true" in out
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["steps"] == 4  # 32 training images, one epoch of 4 batches of 8
    for key in ("linear_acc", "linear_aug_acc", "knn_acc"):
        assert 0 <= results[key] <= 100, key
    ckpt = torch.load(tmp_path / "run" / "last.ckpt", weights_only=False)
    assert ckpt["equissl_config"]["data"]["stream"] == "true"
