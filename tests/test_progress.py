"""What a run prints: per-epoch lines with an ETA when stdout is not a terminal, one line per
phase with its time, and no third-party tips."""

import logging
import re

import pytest

from equissl.app.config import build_config
from equissl.app.progress import (
    format_eta,
    format_seconds,
    metric_items,
    remaining_seconds,
    silence_tips,
)
from equissl.app.runner import pretrain

TINY = [
    "data.limit=128",
    "data.test_limit=60",
    "data.size=12",
    "backbone.width=4",
    "optim.batch_size=32",
    "optim.epochs=2",
    "trainer.progress_bar=true",  # asked for, but stdout is not a terminal: lines instead
    "eval.linear.epochs=2",
    "eval.knn.k=5",
]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.4, "0s"), (59.4, "59s"), (59.6, "1m00s"), (86, "1m26s"), (3599, "59m59s")]
    + [(3600, "1h00m"), (7500, "2h05m"), (-3, "0s")],
)
def test_format_eta(seconds, text):
    assert format_eta(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.123, "0.12 s"), (12.34, "12.3 s"), (59.9, "59.9 s"), (86, "1m26s")]
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


def test_remaining_time_at_the_pace_so_far():
    assert remaining_seconds(0, 10, 5.0) is None  # nothing done: no pace yet
    assert remaining_seconds(3, 10, 30.0) == pytest.approx(70.0)
    assert remaining_seconds(10, 10, 30.0) == 0.0


def test_metric_items_flattens_and_skips_descriptions():
    results = {"name": "r", "seed": 0, "linear_acc": 91.355, "steps": 4, "resumed": False}
    results |= {"low_label_1": {"labels": 14, "linear_acc": 50.0}, "linear_accs": [91.0, 92.0]}
    assert metric_items(results) == [
        ("linear_acc", "91.36"),
        ("steps", "4"),
        ("low_label_1.labels", "14"),
        ("low_label_1.linear_acc", "50.00"),
    ]


def test_tips_are_filtered_from_lightnings_log(caplog):
    silence_tips()
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("💡 Tip: For seamless cloud logging, try installing [litlogger]")
        logger.info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]


def test_tiny_run_prints_epoch_and_phase_lines_without_tips(tmp_path, capfd, monkeypatch):
    # Lightning's own INFO lines on, as a Python user would have them (the CLI lowers them).
    monkeypatch.setattr(logging.getLogger("lightning.pytorch"), "level", logging.INFO)
    cfg = build_config(["esimclr", "smoke"], [*TINY, f"out_dir={tmp_path}", "name=p"])
    pretrain(cfg)
    out, err = capfd.readouterr()
    lines = out.splitlines()
    number = r"\d+(\.\d+)? s"
    expected = [
        r"loaded digits: 188 images \(128 train, 60 test, 3x12x12\) in " + number,
        r"epoch 1/2  loss [\d.]+  online_acc [\d.]+%  rotation_acc [\d.]+%  "
        + number
        + r"  ETA \d+s",
        r"epoch 2/2  loss [\d.]+  online_acc [\d.]+%  rotation_acc [\d.]+%  " + number,
        r"pretrained: 8 steps in " + number,
        r"features: 188 images in " + number,
        r"linear probe \(1 seed\): [\d.]+ % in " + number,
        r"kNN \(k=5\): [\d.]+ % in " + number,
        r"transformation heads: rotation_acc [\d.]+ % in " + number,
        r"evaluated in " + number,
    ]
    matched = [next((ln for ln in lines if re.fullmatch(p, ln)), None) for p in expected]
    assert None not in matched, (expected[matched.index(None)], lines)
    assert [lines.index(m) for m in matched] == sorted(lines.index(m) for m in matched)
    assert "Tip" not in out + err and "litlogger" not in out + err
    assert "\r" not in out  # no progress bar redrawing into a log
