"""The DOS workflow: physically invisible transformations, the metric, pretraining, end to end."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from equissl.app.cli import main
from equissl.photonics import PhCSettings, dos_target, generate_cells
from equissl.photonics.augment import (
    equivariance_transform,
    half_shift,
    invariance_augment,
    normalise,
    roll_cells,
)
from equissl.photonics.learn import CellNet, pretrain, relative_l1
from equissl.photonics.workflow import config_from, pretrain_settings

# Small solver settings; an even k-grid is mapped onto itself by D4 (see kpoints.k_grid).
SMALL = PhCSettings(order=3, k_grid=4, n_freq=120)


def _dos(x: torch.Tensor) -> torch.Tensor:
    return dos_target(x.squeeze(1).double(), SMALL)


@pytest.mark.parametrize("family", ["blob", "pm"])
def test_augmentations_and_predicted_transformations_leave_the_dos_unchanged(family):
    cell = generate_cells(family, 1, seed=3).double().unsqueeze(1)  # (1, 1, 32, 32)
    copies = cell.expand(6, 1, 32, 32)
    generator = torch.Generator().manual_seed(0)
    augmented = invariance_augment(family, 32)(copies, generator)
    eq = equivariance_transform(family, 32)
    moved = eq.apply(cell.expand(4, 1, 32, 32), torch.arange(4))
    assert all(not torch.equal(v, cell[0]) for v in moved[1:])  # the image changes...
    reference = _dos(cell)
    for batch in (augmented, moved):  # ...the DOS does not
        torch.testing.assert_close(
            _dos(batch), reference.expand(len(batch), -1), atol=1e-7, rtol=1e-7
        )


def test_blob_augmentation_covers_d4_and_pm_rolls_every_shift():
    cell = generate_cells("blob", 1, seed=1).unsqueeze(1)
    out = invariance_augment("blob", 32)(
        cell.expand(200, 1, 32, 32), torch.Generator().manual_seed(0)
    )
    d4 = [torch.rot90(c, k, (-2, -1)) for c in (cell[0], cell[0].flip(-1)) for k in range(4)]
    seen = {next(i for i, g in enumerate(d4) if torch.equal(v, g)) for v in out}
    assert seen == set(range(8))
    x = torch.randn(5, 2, 32, 32)
    shifts = torch.tensor([[0, 0], [1, 31], [16, 16], [-3, 7], [40, -40]])
    expected = torch.stack(
        [torch.roll(x[i], tuple(shifts[i].tolist()), (-2, -1)) for i in range(5)]
    )
    assert torch.equal(roll_cells(x, shifts), expected)


def test_half_shift_is_z2_squared_and_its_labels_are_recoverable():
    t = half_shift(32)
    x = generate_cells("blob", 8, seed=2).unsqueeze(1)
    labels = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    y = t.apply(x, labels)
    assert torch.equal(y[1], torch.roll(x[1], 16, -1)) and torch.equal(
        y[2], torch.roll(x[2], 16, -2)
    )
    assert torch.equal(t.apply(y, labels), x)  # every element is its own inverse
    # Applying label k, then searching the four candidates on the exact input recovers k.
    candidates = torch.stack([t.apply(x, torch.full_like(labels, j)) for j in range(4)])
    distance = (candidates - y).flatten(2).abs().sum(-1)  # (4, N)
    assert torch.equal(distance.argmin(0), labels)
    assert torch.equal(
        t.relative, torch.tensor([[0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1], [3, 2, 1, 0]])
    )


def test_relative_l1_against_a_hand_computed_example():
    target = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, -1.0, 1.0, 0.0]])
    pred = torch.tensor([[9.0, 2.0, 4.0, 2.0], [5.0, 0.0, 1.0, 1.0]])
    empty = torch.tensor([0.0, 1.0, 1.0, 1.0])
    # cell 0, skipping point 0: (0 + 1 + 2) / (3 + 4 + 5); cell 1: (1 + 0 + 1) / (0 + 2 + 1)
    errors = relative_l1(pred, target, empty, skip=1)
    torch.testing.assert_close(errors, torch.tensor([3 / 12, 2 / 3], dtype=torch.float64))
    assert relative_l1(target, target, empty).abs().max() == 0


@pytest.mark.parametrize(("family", "mode"), [("blob", "relative"), ("pm", "predict")])
def test_pretraining_runs_both_prediction_modes(family, mode):
    cfg = config_from({"scale": "smoke", "eq_mode": mode, "pretrain_batch": 8})
    cells = generate_cells(family, 16, seed=0)
    lines = []
    settings = pretrain_settings(cfg)
    encoder, stats = pretrain("esimclr", cells, family, settings, torch.device("cpu"), lines.append)
    assert encoder(normalise(cells[:2])).shape == (2, encoder.num_features)
    assert 0 <= stats["transform_acc"] <= 1 and stats["loss"] > 0 and len(lines) == 1


def test_flattened_cellnet_keeps_positions_whose_mean_is_the_averaged_features():
    flat, avg = CellNet(4, pool="flatten").eval(), CellNet(4, pool="avg").eval()
    avg.load_state_dict(flat.state_dict())  # no parameters depend on the pooling
    x = normalise(generate_cells("blob", 3, seed=1))
    f = flat(x)
    assert f.shape == (3, 32 * 2 * 2) == (3, flat.num_features) and avg.num_features == 32
    torch.testing.assert_close(f.view(3, 32, 4).mean(-1), avg(x))
    # The final map's positions: a half-cell roll changes the flattened features.
    assert not torch.allclose(flat(half_shift(32).apply(x, torch.full((3,), 3))), f)


def test_smoke_workflow_end_to_end(tmp_path, capsys):
    args = ["photonics", "run", "family=blob", "scale=smoke", f"out_dir={tmp_path / 'runs'}",
            f"data_dir={tmp_path / 'data'}"]  # fmt: skip
    assert main(args) == 0
    run = tmp_path / "runs" / "photonics-blob-smoke"
    record = json.loads((run / "results.json").read_text())
    methods = [r["method"] for r in record["results"]]
    assert methods == ["supervised", "simclr", "esimclr"]
    for row in record["results"]:
        assert len(row["errors"]) == 2 and 0 < row["error_mean"] < 10
        assert all(1 <= e <= 2 for e in row["best_epochs"])  # selected on the validation split
    assert record["splits"] == {"test": 6, "val": 6, "train": 12}
    rows = list(csv.DictReader((run / "results.csv").open()))
    assert [r["method"] for r in rows] == methods
    table = (run / "results.md").read_text()
    assert "| esimclr |" in table and "±" in table
    assert 0 < record["homogeneous_medium_error"] < 10
    assert f"{100 * record['homogeneous_medium_error']:.2f} %" in table
    assert (run / "dos_examples.png").read_bytes()[:4] == b"\x89PNG"
    assert "run folder" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "needs a subcommand"),
        (["run", "scale=huge"], "unknown photonics scale"),
        (["run", "famly=blob"], "did you mean family"),
        (["run", "seeds=three"], "seeds must be an integer"),
        (["run", "family=hex"], "family must be blob, pm or all"),
        (["run", "pool=max"], "pool must be one of flatten, avg"),
        (["run", "methods=simclr,byol"], "methods"),
        (["run", "scale=smoke", "n_labeled=13"], "fewer than 2 training cells"),
        (["build", "family=blob"], "needs n_labeled=..., n_unlabeled=..."),
        (["build", "family=hex", "n_labeled=2", "n_unlabeled=2"], "unknown photonic family"),
        (["build", "family=blob", "n_labeled=2", "n_unlabeled=2", "order=0"], "order"),
    ],
)
def test_bad_input_is_one_error_line(args, message, capsys):
    assert main(["photonics", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
