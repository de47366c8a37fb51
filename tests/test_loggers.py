"""trainer.logger: TensorBoard's HPARAMS tab, an offline W&B run and a local MLflow run each
receive the resolved configuration and the run's results; metrics.csv is always written; a
logger whose package is missing stops with one line before anything is written."""

import csv
import json
import struct
import sys

import pytest

from equissl.app.cli import main
from equissl.app.config import build_config
from equissl.app.loggers import final_metrics, flat_config
from equissl.app.runner import pretrain

TINY = [
    "data.limit=128",
    "data.test_limit=60",
    "data.size=12",
    "backbone.width=4",
    "optim.batch_size=64",
    "eval.linear.epochs=2",
    "eval.knn.k=5",
    "optim.lr=0.125",
]


def _run(tmp_path, *extra):
    cfg = build_config(["simclr", "smoke"], [*TINY, f"out_dir={tmp_path}", "name=r", *extra])
    results = pretrain(cfg)
    run_dir = tmp_path / "r"
    with open(run_dir / "metrics.csv", newline="") as f:  # reports read it whatever the logger
        assert any(row.get("epoch/loss") for row in csv.DictReader(f))
    assert json.loads((run_dir / "results.json").read_text())["linear_acc"] == results["linear_acc"]
    return cfg, results, run_dir


def test_flat_config_and_final_metrics():
    cfg = build_config(["simclr", "smoke"], ["optim.lr=0.125"])
    flat = flat_config(cfg)
    assert flat["optim.lr"] == 0.125 and flat["data.name"] == "digits"
    assert flat["data.path"] == "None" and isinstance(flat["method.equivariance"], str)
    results = {"name": "r", "seed": 0, "linear_acc": 50.0, "low_label_1": {"linear_acc": 20.0}}
    assert final_metrics(results) == {
        "final/linear_acc": 50.0,
        "final/low_label_1.linear_acc": 20.0,
    }


def test_tensorboard_hparams_tab_holds_config_and_results(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    _, results, run_dir = _run(tmp_path)
    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    starts = [plugin_data_pb2.HParamsPluginData.FromString(c) for c in content.values()]
    hparams = next(s.session_start_info.hparams for s in starts if s.HasField("session_start_info"))
    assert hparams["optim.lr"].number_value == 0.125
    assert hparams["method.invariance"].string_value == "simclr"
    final = events.Scalars("final/linear_acc")
    assert final[-1].value == pytest.approx(results["linear_acc"])
    assert "epoch/loss" in events.Tags()["scalars"]  # the training curves, as before


def _wandb_records(path):
    """The records of a W&B run file (LevelDB's log format after a 7-byte W&B header)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, block, chunk = path.read_bytes(), 7, 32768, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (length == 0 and kind == 0):  # block trailer or padding
            pos += left
            continue
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            yield record
            chunk = b""


def test_wandb_offline_run_holds_config_and_results(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    _, results, run_dir = _run(tmp_path, "trainer.logger=wandb")
    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    config, summary = {}, {}
    for record in _wandb_records(path):
        if record.HasField("config"):
            config.update({u.key: json.loads(u.value_json) for u in record.config.update})
        if record.HasField("summary"):
            summary.update({u.key: json.loads(u.value_json) for u in record.summary.update})
    assert config["optim.lr"] == 0.125 and config["data.name"] == "digits"
    assert summary["final/linear_acc"] == pytest.approx(results["linear_acc"])
    assert not (run_dir / "tb").exists()  # W&B replaces TensorBoard, not metrics.csv


def test_mlflow_local_run_holds_config_and_results(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    _, results, _ = _run(tmp_path, "trainer.logger=mlflow", "trainer.project=tiny")
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.info.run_name == "r" and run.info.status == "FINISHED"
    assert run.data.params["optim.lr"] == "0.125"
    assert run.data.metrics["final/linear_acc"] == pytest.approx(results["linear_acc"])
    assert "epoch/loss" in run.data.metrics


def test_missing_logger_package_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb fails as if not installed
    argv = ["pretrain", "simclr", "smoke", f"out_dir={tmp_path}", "name=w", "trainer.logger=wandb"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "equissl: error: trainer.logger=wandb needs the wandb package: pip install "
        "'equissl[wandb]' (or pick tensorboard or csv)"
    ]
    assert not (tmp_path / "w").exists()


def test_csv_logger_writes_metrics_csv_alone(tmp_path):
    _, _, run_dir = _run(tmp_path, "trainer.logger=csv")
    assert not (run_dir / "tb").exists()
