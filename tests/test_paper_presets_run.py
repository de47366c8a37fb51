"""Every family of paper presets trains and evaluates end to end at smoke scale (the embedded
digits, a width-4 ResNet-18, one epoch), with its official linear probe (one epoch): a preset
whose settings cannot run together fails here, not on a GPU."""

import json

import pytest

from equissl.app.cli import main

SMALL_VIEWS = [  # the ImageNet views at CIFAR sizes, so that the smoke run takes seconds
    "augment.size=32",
    "eval.linear.augmented.test_resize=36",
    "eval.linear.augmented.test_crop=32",
]


@pytest.mark.parametrize(
    "preset, extra",
    [
        ("care-cifar10-paper", []),
        ("care-moco-imagenet100-paper", SMALL_VIEWS),
        (
            "imagenet-ebarlow_twins",
            [*SMALL_VIEWS, "method.equivariance.0.size=16", "method.proj_hidden=64",
             "method.proj_dim=64"],
        ),
    ],
)  # fmt: skip
def test_paper_preset_runs_at_smoke_scale(preset, extra, tmp_path):
    argv = [
        "pretrain", preset, "smoke", *extra, "eval.linear.augmented.epochs=1",
        "eval.linear.augmented.batch_size=64", f"out_dir={tmp_path}", "name=run",
    ]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    for key in ("linear_acc", "linear_aug_acc", "knn_acc", "online_acc"):
        assert 0 <= results[key] <= 100, key
