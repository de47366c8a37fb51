import numpy as np
import pytest

from equissl.errors import DataError, UserError
from equissl.reports import plot_curves, read_metrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Lightning-style sparse rows; the run was resumed from step 20, re-logging steps 20 and 30.
METRICS_CSV = """epoch,step,train/loss,train/online_acc,val/acc
0,10,2.5,,
0,20,2.0,30.0,
0,20,,,40.0
1,30,1.5,35.0,
1,20,1.9,31.0,
1,30,1.4,,
"""


def make_run(root, name, text=METRICS_CSV):
    run = root / name
    run.mkdir()
    (run / "metrics.csv").write_text(text)
    return run


def test_read_metrics_drops_empty_cells_and_keeps_last_duplicate(tmp_path):
    metrics = read_metrics(make_run(tmp_path, "run"))
    assert set(metrics) == {"epoch", "train/loss", "train/online_acc", "val/acc"}
    steps, values = metrics["train/loss"]
    assert steps.dtype == np.int64
    np.testing.assert_array_equal(steps, [10, 20, 30])
    np.testing.assert_array_equal(values, [2.5, 1.9, 1.4])
    steps, values = metrics["train/online_acc"]
    np.testing.assert_array_equal(steps, [20, 30])
    np.testing.assert_array_equal(values, [31.0, 35.0])
    np.testing.assert_array_equal(metrics["val/acc"][0], [20])


def test_read_metrics_errors(tmp_path):
    with pytest.raises(UserError, match="metrics.csv"):
        read_metrics(tmp_path)
    with pytest.raises(DataError, match="step"):
        read_metrics(make_run(tmp_path, "nostep", "epoch,train/loss\n0,1.0\n"))
    with pytest.raises(DataError, match="train/loss"):
        read_metrics(make_run(tmp_path, "bad", "step,train/loss\n1,oops\n"))


def test_plot_curves_writes_png_and_skips_unlogged_metrics(tmp_path, monkeypatch):
    import matplotlib.figure

    subplots = []
    original = matplotlib.figure.Figure.subplots

    def spy(self, *args, **kwargs):
        subplots.append(args[:2])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "subplots", spy)
    runs = [make_run(tmp_path, "a"), make_run(tmp_path, "b", "step,train/loss\n1,3.0\n2,2.0\n")]
    out = plot_curves(runs, tmp_path / "plots" / "curves.png")
    assert out == tmp_path / "plots" / "curves.png"
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    assert subplots == [(1, 2)]  # train/loss and train/online_acc; no run has rotation_acc
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]


def test_plot_curves_errors(tmp_path):
    run = make_run(tmp_path, "a")
    assert plot_curves([run], tmp_path / "x.png", metrics=["train/rotation_acc"]) is None
    with pytest.raises(UserError, match="labels"):
        plot_curves([run], tmp_path / "x.png", labels=["a", "b"])
    assert not (tmp_path / "x.png").exists()
    untrained = tmp_path / "untrained"  # a 0-epoch run: results but no metrics file
    untrained.mkdir()
    plot_curves([run, untrained], tmp_path / "y.png")
    assert plot_curves([untrained], tmp_path / "z.png") is None  # a table still follows
    assert not (tmp_path / "z.png").exists()


def test_a_run_keeps_its_colour_in_every_panel(tmp_path, monkeypatch):
    """Run b logs no online accuracy: it is still drawn in its own colour (C1) in the loss
    panel, and run c in C2 in both panels (the panels' own line counts differ)."""
    import matplotlib.axes

    drawn = []
    original = matplotlib.axes.Axes.plot

    def spy(self, *args, **kwargs):
        drawn.append((self.get_title() or "?", kwargs["label"], kwargs["color"]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    runs = [
        make_run(tmp_path, "a"),
        make_run(tmp_path, "b", "step,train/loss\n1,3.0\n"),
        make_run(tmp_path, "c"),
    ]
    plot_curves(runs, tmp_path / "c.png")
    colours = {}
    for _, label, colour in drawn:
        colours.setdefault(label, set()).add(colour)
    assert colours == {"a": {"C0"}, "b": {"C1"}, "c": {"C2"}}
