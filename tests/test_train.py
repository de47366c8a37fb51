"""End-to-end pretraining on the embedded digits: runs, resume, non-finite loss."""

import csv
import json
import math

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from equissl.app.cli import main
from equissl.app.config import build_config
from equissl.app.runner import pretrain
from equissl.errors import NonFiniteLossError, UserError

TINY = [
    "data.limit=160",
    "data.test_limit=60",
    "data.size=12",
    "backbone.width=4",
    "optim.batch_size=32",
    "optim.epochs=2",
    "optim.warmup_epochs=1",
    "trainer.accelerator=cpu",
    "trainer.progress_bar=false",
    "trainer.log_every_n_steps=1",
    "eval.linear.epochs=5",
    "eval.linear.seeds=2",
    "eval.knn.k=5",
]


def _cfg(tmp_path, preset, *extra):
    return build_config([preset], [*TINY, f"out_dir={tmp_path}", *extra])


def _losses(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    return {int(r["step"]): float(r["train/loss"]) for r in rows}


@pytest.mark.parametrize("preset", ["simclr", "esimclr"])
def test_pretrain_writes_a_complete_run_folder(tmp_path, preset):
    cfg = _cfg(tmp_path, preset, f"name={preset}")
    results = pretrain(cfg)
    run = tmp_path / preset
    for name in ("config.yaml", "metrics.csv", "last.ckpt", "results.json"):
        assert (run / name).is_file(), name
    assert list((run / "tb").glob("events.out.tfevents.*"))
    saved = json.loads((run / "results.json").read_text())
    assert saved["linear_acc"] == results["linear_acc"]
    assert 0 <= saved["linear_acc"] <= 100 and 0 <= saved["knn_acc"] <= 100
    assert saved["steps"] == 2 * (160 // 32)
    assert ("rotation_acc" in saved) == (preset == "esimclr")
    assert all(math.isfinite(v) for v in _losses(run).values())
    assert not list(run.glob(".*.tmp"))
    if preset == "simclr":  # `equissl eval` reproduces the end-of-run evaluation exactly
        assert main(["eval", f"ckpt={run / 'last.ckpt'}"]) == 0
        again = json.loads((run / "eval.json").read_text())
        assert again["linear_acc"] == pytest.approx(saved["linear_acc"], abs=1e-9)
        assert again["knn_acc"] == pytest.approx(saved["knn_acc"], abs=1e-9)
        assert main(["eval", f"ckpt={run / 'last.ckpt'}", "backbone.width=8"]) == 2


class _Crash(RuntimeError):
    pass


class _Interrupt(Callback):
    def __init__(self, at_step):
        self.at_step = at_step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step == self.at_step:
            raise _Crash("simulated crash")


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    whole = pretrain(_cfg(tmp_path, "esimclr", "name=whole"))
    cut = _cfg(tmp_path, "esimclr", "name=cut")
    with pytest.raises(_Crash):
        pretrain(cut, callbacks=[_Interrupt(at_step=7)])  # mid-way through the second epoch
    assert torch.load(tmp_path / "cut" / "last.ckpt", weights_only=False)["global_step"] == 5
    resumed = pretrain(cut)
    assert resumed["resumed"] is True
    a, b = _losses(tmp_path / "whole"), _losses(tmp_path / "cut")
    assert sorted(a) == sorted(b) == list(range(10))
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-5, abs=1e-6), step
    assert resumed["linear_acc"] == pytest.approx(whole["linear_acc"], abs=1e-6)
    assert resumed["knn_acc"] == pytest.approx(whole["knn_acc"], abs=1e-6)
    with pytest.raises(UserError, match="was written with backbone.width=4, not 8"):
        pretrain(_cfg(tmp_path, "esimclr", "name=cut", "backbone.width=8"))


class _Poison(Callback):
    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 1:
            with torch.no_grad():
                next(module.method.backbone.parameters()).fill_(float("nan"))


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = _cfg(tmp_path, "simclr", "name=nan")
    with pytest.raises(NonFiniteLossError, match="NaN or infinite"):
        pretrain(cfg, callbacks=[_Poison()])
    ckpt = torch.load(tmp_path / "nan" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 5
    assert all(
        torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point()
    )
    assert not (tmp_path / "nan" / "results.json").exists()


def test_processes_split_each_epoch_permutation_without_overlap():
    from types import SimpleNamespace

    from equissl.app.train import PretrainModule

    cfg = build_config(["simclr"], ["optim.batch_size=8", "seed=3"])
    images = torch.zeros(37, 1, 2, 2, dtype=torch.uint8)
    orders = []
    for rank in range(2):
        module = PretrainModule(cfg, torch.nn.Linear(1, 1), images, torch.zeros(37))
        module._trainer = SimpleNamespace(world_size=2, global_rank=rank, global_step=4)
        orders.append(torch.stack(list(module.train_dataloader())))  # epoch 1: steps 4 to 7
        module._trainer.global_step = 6  # resumed before step 6: the rest of epoch 1
        assert torch.equal(torch.stack(list(module.train_dataloader())), orders[-1][2:])
    assert orders[0].shape == orders[1].shape == (37 // 8, 4)  # 4 steps of 4 images per process
    seen = torch.cat([o.flatten() for o in orders])
    assert seen.unique().numel() == seen.numel() == 32  # disjoint, 32 of the 37 images
    g = torch.Generator().manual_seed(3 * 1_000_003 + 1)
    perm = torch.randperm(37, generator=g)[:32].view(4, 2, 4)
    assert torch.equal(orders[0], perm[:, 0]) and torch.equal(orders[1], perm[:, 1])


def test_metrics_csv_survives_a_kill_during_a_header_rewrite_or_an_append(tmp_path, monkeypatch):
    """A kill while new columns rewrite metrics.csv (Lightning rewrites it in place at the first
    epoch end: a SIGKILL then lost every earlier row) leaves the old file whole; a row cut short
    by a kill during an append is dropped when the run resumes."""
    from equissl.app.train import _AppendingWriter

    path = tmp_path / "metrics.csv"
    writer = _AppendingWriter(log_dir=str(tmp_path))
    for step in range(3):
        writer.log_metrics({"train/loss": 1.0 / (step + 1)}, step)
    writer.save()
    before = path.read_text()

    class Killed(BaseException):
        pass

    def killed(self, rows):
        raise Killed  # the process dies while the rewrite writes its rows

    monkeypatch.setattr(csv.DictWriter, "writerows", killed)
    writer.log_metrics({"epoch/loss": 0.5}, 2)
    with pytest.raises(Killed):
        writer.save()
    monkeypatch.undo()
    assert path.read_text() == before  # the earlier rows are all there
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]

    with open(path, "a") as f:
        f.write("0.2,3")  # an append cut short: no newline
    resumed = _AppendingWriter(log_dir=str(tmp_path))
    resumed.log_metrics({"train/loss": 0.25}, 3)
    resumed.save()
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3]
    assert float(rows[-1]["train/loss"]) == 0.25


def test_a_run_removes_the_temporary_files_a_killed_run_left(tmp_path):
    cfg = _cfg(tmp_path, "simclr", "name=left", "optim.epochs=1")
    run = tmp_path / "left"
    run.mkdir()
    stale = [run / ".last.ckpt.123.tmp", run / ".metrics.csv.456.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    keep = run / "notes.tmp"  # not a file equissl writes: left alone
    keep.write_text("mine")
    pretrain(cfg)
    assert not any(p.exists() for p in stale) and keep.read_text() == "mine"
