"""The studies of the papers run end to end at the smoke scale (seconds on a CPU)."""

import json

import pytest
from omegaconf import OmegaConf

from equissl.app.cli import EXPERIMENTS, main
from equissl.app.sweep import load_sweep, sweep_configs


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_has_the_three_scales(name):
    sweep = load_sweep(name)
    assert set(sweep.scales) == {"smoke", "cpu", "paper"}
    for scale in sweep.scales:  # every run of every scale is a valid configuration
        root, configs = sweep_configs(sweep, scale=scale)
        assert root.name == f"{name}-{scale}" and len(configs) == len(sweep.runs)


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


def test_care_study_at_smoke_scale_reports_the_geometry(tmp_path, capsys):
    assert main(["experiment", "care", "scale=smoke", f"out_dir={tmp_path}"]) == 0
    root = tmp_path / "care-smoke"
    care = json.loads((root / "care-s0" / "results.json").read_text())
    simclr = json.loads((root / "simclr-s0" / "results.json").read_text())
    assert care["method"] == "simclr+augment:care" and simclr["method"] == "simclr"
    for row in (care, simclr):
        for key in ("equiv_err", "orth_err", "pow4_err", "procrustes_err", "inv_cos"):
            assert f"emb_rotation_{key}" in row and f"feat_rotation_{key}" in row
        assert "emb_hflip_procrustes_pow2_err" in row and "emb_grayscale_equiv_err" in row
        assert row["hue_sensitivity"]["degrees"][-1] == 180
        assert row["hue_sensitivity"]["emb"][0] == pytest.approx(1.0, abs=1e-4)
    assert "train/augment_care_loss" in (root / "care-s0" / "metrics.csv").read_text()
    assert (root / "care-s0" / "hue_sensitivity.png").stat().st_size > 0
    assert (root / "hue_sensitivity.png").stat().st_size > 0
    assert "| simclr+augment:care |" in (root / "results.md").read_text()


def test_ce_vs_care_study_at_smoke_scale(tmp_path):
    assert main(["experiment", "ce-vs-care", "scale=smoke", f"out_dir={tmp_path}"]) == 0
    root = tmp_path / "ce-vs-care-smoke"
    ce = json.loads((root / "rotation-ce" / "results.json").read_text())
    care = json.loads((root / "rotation-care" / "results.json").read_text())
    assert ce["method"] == "none+rotation:predict" and "transform_acc" in ce
    assert care["method"] == "none+rotation:care" and "transform_acc" not in care
    assert "train/rotation_care_uniformity" in (root / "rotation-care" / "metrics.csv").read_text()
    assert "emb_rotation_equiv_err" in care


def test_base_augmentations_study_at_smoke_scale(tmp_path):
    assert main(["experiment", "base-augmentations", "scale=smoke", f"out_dir={tmp_path}"]) == 0
    root = tmp_path / "base-augmentations-smoke"
    for aug in ("none", "cropflip", "simclr"):
        plain = json.loads((root / f"{aug}-resnet18" / "results.json").read_text())
        eq = json.loads((root / f"{aug}-eqresnet18" / "results.json").read_text())
        cfg = OmegaConf.load(root / f"{aug}-eqresnet18" / "config.yaml")
        assert cfg.method.equivariance[0].augment == aug and cfg.backbone.group == "c4"
        assert plain["backbone"] == "resnet18-w4" and eq["backbone"] == "eqresnet18-c4-w4"
        assert 0 <= eq["train_transform_acc"] <= 100 and 0 <= eq["linear_acc"] <= 100
        assert 0 <= eq["online_acc"] <= 100  # the online classifier on the test split (Wang)
    table = (root / "results.md").read_text().splitlines()
    header = next(r for r in table if r.startswith("| name |"))
    gain = [c.strip() for c in header.strip("|").split("|")].index("linear_acc_gain")
    row = next(r for r in table if r.startswith("| none-eqresnet18 |"))
    eq = json.loads((root / "none-eqresnet18" / "results.json").read_text())
    base = json.loads((root / "none-resnet18" / "results.json").read_text())
    expected = eq["linear_acc"] - base["linear_acc"]
    assert float(row.strip("|").split("|")[gain]) == pytest.approx(expected, abs=0.01)


def test_gains_are_differences_from_the_named_baseline():
    from equissl.app.sweep import add_gains

    rows = [
        {"name": "a", "acc": 40.0, "x": 1},
        {"name": "b", "acc": 43.5, "x": "text"},
        {"name": "c", "acc": 10.0},
    ]
    add_gains(rows, {"b": "a", "c": "missing"}, ["acc", "x"])
    assert rows[1]["acc_gain"] == pytest.approx(3.5)
    assert "x_gain" not in rows[1] and "acc_gain" not in rows[0] and "acc_gain" not in rows[2]
