"""Signals on a streamed run (shards read by DataLoader workers): after SIGKILL (resumed from the
last epoch's checkpoint) and SIGTERM (a checkpoint mid-epoch) the same command reproduces the
uninterrupted run's every step loss, bit for bit."""

from __future__ import annotations

import json
import signal

import pytest
from cases import cli_process, step_losses, tiny, wait_for

from equissl.app.cli import main
from equissl.data.shards import prepare_shards
from jpeg_folders import image_folder

# 96 training images in 12 shards of 8, two workers: 12 steps of 8 an epoch, 6 epochs.
STREAM = ["data.limit=null", "data.workers=2", "optim.batch_size=8", "optim.epochs=6"]


def _command(tmp, shards, name):
    return tiny(tmp, "data.name=imagefolder", f"data.path={shards}", *STREAM, name=name)


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    """The shard folder and the uninterrupted run every interrupted one is compared with."""
    tmp = tmp_path_factory.mktemp("stream")
    src = image_folder(tmp / "src", classes=4, per_class=30, size=(14, 16))
    prepare_shards(src, tmp / "shards", shard_size=8, workers=1)
    assert main(_command(tmp, tmp / "shards", "whole")) == 0
    run = tmp / "runs" / "whole"
    return tmp / "shards", step_losses(run), json.loads((run / "results.json").read_text())


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_signalled_streamed_run_continues_exactly(signum, streamed, tmp_path):
    shards, losses, results = streamed
    run = tmp_path / "runs" / "cut"
    process = cli_process(_command(tmp_path, shards, "cut"))
    wait_for(run / "last.ckpt", process)
    process.send_signal(signum)
    _, err = process.communicate(timeout=300)
    assert process.returncode == (-9 if signum == signal.SIGKILL else 143), err
    assert not (run / "results.json").exists()
    assert main(_command(tmp_path, shards, "cut")) == 0
    assert sorted(losses) == list(range(72))
    assert step_losses(run) == losses  # every step, bit for bit
    again = json.loads((run / "results.json").read_text())
    assert again["resumed"] is True
    assert again["linear_acc"] == results["linear_acc"]
