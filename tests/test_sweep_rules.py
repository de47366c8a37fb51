"""Sweep rules: which runs count as finished, and which command-line overrides are ambiguous."""

import json

import pytest

from equissl.app.config import build_config, to_yaml
from equissl.app.sweep import Sweep, SweepRun, finished_earlier, sweep_configs
from equissl.errors import ConfigError


def _finished(tmp_path, cfg, results):
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "config.yaml").write_text(to_yaml(cfg))
    (run / "results.json").write_text(results)
    return run


def test_a_run_is_finished_only_with_clean_results_and_the_same_config(tmp_path):
    cfg = build_config(["simclr"], ["data.limit=100"])
    run = _finished(tmp_path, cfg, json.dumps({"linear_acc": 50.0}))
    assert finished_earlier(run, cfg)
    # trainer settings and data paths do not change results
    assert finished_earlier(run, build_config(["simclr"], ["data.limit=100", "trainer.threads=1"]))
    assert finished_earlier(run, build_config(["simclr"], ["data.limit=100", "data.path=/x"]))
    # anything else does
    assert not finished_earlier(run, build_config(["simclr"], ["data.limit=100", "eval.knn.k=5"]))
    assert not finished_earlier(run, build_config(["esimclr"], ["data.limit=100"]))
    # a recorded failure, or a damaged file, runs again
    _finished(tmp_path, cfg, json.dumps({"name": "run", "failed": "diverged"}))
    assert not finished_earlier(run, cfg)
    _finished(tmp_path, cfg, '{"linear_acc": 5')
    assert not finished_earlier(run, cfg)
    (run / "config.yaml").unlink()
    assert not finished_earlier(run, cfg)


def _sweep(*runs):
    return Sweep(name="s", presets=["demo"], runs=list(runs))


def test_command_line_overrides_apply_where_no_run_sets_the_key(tmp_path):
    sweep = _sweep(SweepRun("a", ["simclr"]), SweepRun("b", ["simclr"], ["seed=1"]))
    _, configs = sweep_configs(sweep, ["optim.epochs=3", "eval.knn.k=7"], str(tmp_path))
    assert [c.optim.epochs for c in configs] == [3, 3]
    assert [c.eval.knn.k for c in configs] == [7, 7]
    assert [c.seed for c in configs] == [0, 1]


@pytest.mark.parametrize(
    "runs,override,message",
    [
        # a run's own override
        (
            [SweepRun("a", ["simclr"]), SweepRun("random-init", ["simclr"], ["optim.epochs=0"])],
            "optim.epochs=3",
            "sweep run 'random-init' sets optim.epochs=0 itself, and the command line would "
            "make it 3",
        ),
        # a run's own preset (esimclr sets lr 0.06 where the sweep's settings have 0.03)
        ([SweepRun("e", ["esimclr"])], "optim.lr=0.1", "sweep run 'e' sets optim.lr=0.06"),
        # an override naming a key outright counts even where it equals the shared value
        ([SweepRun("s0", ["simclr"], ["seed=0"])], "seed=4", "sweep run 's0' sets seed=0"),
        # a whole list set by the run
        (
            [SweepRun("e", ["esimclr"])],
            "method.equivariance.0.weight=0.1",
            "sweep run 'e' sets method.equivariance.0.weight=0.4",
        ),
    ],
)
def test_an_override_of_a_runs_own_setting_is_rejected(tmp_path, runs, override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        sweep_configs(_sweep(*runs), [override], str(tmp_path))


def test_an_override_equal_to_a_runs_own_setting_is_not_ambiguous(tmp_path):
    sweep = _sweep(SweepRun("random-init", ["simclr"], ["optim.epochs=0"]))
    _, (cfg,) = sweep_configs(sweep, ["optim.epochs=0"], str(tmp_path))
    assert cfg.optim.epochs == 0


def test_sweep_and_run_folders_cannot_collide(tmp_path):
    """An experiment's folder that is a single run's folder (or the reverse) is refused with
    one line before anything is written."""
    from equissl.app.runner import pretrain
    from equissl.app.sweep import run_sweep

    single = tmp_path / "care-smoke"
    single.mkdir()
    (single / "config.yaml").write_text("name: care-smoke\n")
    sweep = Sweep(name="care", runs=[SweepRun(name="a")], scales={"smoke": ["smoke"]})
    with pytest.raises(ConfigError, match="folder of a single run"):
        run_sweep(sweep, [], str(tmp_path), scale="smoke")
    assert sorted(p.name for p in single.iterdir()) == ["config.yaml"]
    swept = tmp_path / "study"
    swept.mkdir()
    (swept / "results.md").write_text("| name |\n")
    cfg = build_config(["smoke"], [f"out_dir={tmp_path}", "name=study"])
    with pytest.raises(ConfigError, match="folder of a sweep or experiment"):
        pretrain(cfg)
    assert sorted(p.name for p in swept.iterdir()) == ["results.md"]
