"""The studies of the papers run end to end at the smoke scale (seconds on a CPU)."""

import json

import pytest
from omegaconf import OmegaConf

from equissl.cli import main
from equissl.sweep import load_sweep


@pytest.mark.parametrize("name", ["transformations", "essl-cifar10", "class-information"])
def test_every_experiment_has_the_three_scales(name):
    assert set(load_sweep(name).scales) == {"smoke", "cpu", "paper"}


def test_transformation_study_at_smoke_scale(tmp_path, capsys):
    assert main(["experiment", "transformations", "scale=smoke", f"out_dir={tmp_path}"]) == 0
    root = tmp_path / "transformations-smoke"
    runs = ["rotation", "hflip", "vflip", "grayscale", "jigsaw", "blur", "invert", "random-init"]
    for run in runs:
        results = json.loads((root / run / "results.json").read_text())
        cfg = OmegaConf.load(root / run / "config.yaml")
        assert cfg.backbone.width == 4 and cfg.method.invariance == "none"  # scale, then preset
        assert 0 <= results["linear_acc"] <= 100
        assert 0 <= results["transform_acc"] <= 100
        if run != "random-init":
            assert cfg.method.equivariance[0].transform == run
            assert 0 <= results[f"train_{run}_acc"] <= 100  # logged under the term's name
    assert OmegaConf.load(root / "hflip" / "config.yaml").augment.flip_p == 0
    table = (root / "results.md").read_text()
    assert all(f"| {run} |" in table for run in runs)
    assert (root / "curves.png").stat().st_size > 0


def test_class_information_study_at_smoke_scale(tmp_path):
    assert main(["experiment", "class-information", "scale=smoke", f"out_dir={tmp_path}"]) == 0
    root = tmp_path / "class-information-smoke"
    joint = json.loads((root / "joint-1" / "results.json").read_text())
    assert joint["method"] == "none+rotation:predict/joint1"
    assert "train_online_acc" in joint
