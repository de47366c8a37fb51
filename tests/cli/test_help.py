"""`--help` for every command, `--version`, and `equissl config` (keys with their meanings)."""

from __future__ import annotations

import dataclasses

import pytest

from equissl import __version__, config
from equissl.app.cli import COMMANDS, main
from equissl.app.keyhelp import annotated_settings, key_meanings


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_has_help_with_usage_and_example(command, flag, capsys, tmp_path):
    assert main([command, "esimclr", flag, f"out_dir={tmp_path}"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"usage: equissl {command}")
    assert "example: equissl" in out.out or command in ("transforms", "presets")
    assert out.err == "" and not any(tmp_path.iterdir())  # nothing ran


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"equissl {__version__}"


def test_experiment_help_names_every_experiment(capsys):
    from equissl.app.cli import EXPERIMENTS

    main(["experiment", "--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in EXPERIMENTS) and "{names}" not in out


def test_config_prints_the_resolved_settings_with_meanings(capsys):
    assert main(["config", "esimclr", "optim.lr=0.25", "backbone.width=8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    settings = dict(line.split("  #")[0].strip().split("=", 1) for line in lines)
    cfg = config.build_config(["esimclr"], ["optim.lr=0.25", "backbone.width=8"])
    leaves = {k.rsplit(".", 1)[0] if k[-1].isdigit() else k for k in config.flat_settings(cfg)}
    assert leaves <= settings.keys()  # every setting; a list of numbers is one
    assert settings["augment.jitter"] == "[0.4, 0.4, 0.4, 0.1]"
    assert settings["optim.milestones"] == "[]" and settings["eval.corruptions"] == "[]"
    assert settings["optim.lr"] == "0.25" and settings["backbone.width"] == "8"
    assert settings["method.equivariance.0.transform"] == "rotation"
    shown = next(line for line in lines if line.startswith("data.name="))
    assert "# digits | cifar10" in shown  # the comment of DataConfig.name


def test_config_errors_are_one_line(capsys):
    assert main(["config", "optim.lr=x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "optim.lr" in err


def test_meanings_come_from_the_schema_comments():
    """Every key the schema has is listed; a key's meaning is its field's comment, continued
    lines joined; list items are `key.*.field`."""
    meanings = key_meanings()

    def leaves(cls, prefix=""):
        for f in dataclasses.fields(cls):
            listed = f.name == "equivariance" and prefix == "method."
            inner = config.EquivarianceConfig if listed else None
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
            if inner is not None:
                yield from leaves(inner, f"{prefix}{f.name}.*.")
            elif dataclasses.is_dataclass(default):
                yield from leaves(type(default), f"{prefix}{f.name}.")
            else:
                yield f"{prefix}{f.name}"

    assert set(meanings) == set(leaves(config.Config))
    assert meanings["method.negatives"].startswith("SimCLR: both_views")
    assert "other_view" in meanings["method.negatives"]  # from the continuation line
    assert meanings["method.equivariance.*.weight"] == "lambda"


def test_annotated_settings_read_as_overrides():
    cfg = config.build_config(["care"])
    text = annotated_settings(cfg)
    pairs = [line.split("  #")[0].strip() for line in text.splitlines()]
    rebuilt = config.build_config([], [p for p in pairs if not p.startswith("method.equivariance")])
    assert rebuilt.optim == cfg.optim and rebuilt.augment == cfg.augment


def test_unnamed_runs_get_unique_names_and_never_collide(tmp_path, capsys):
    """The quick tour's commands without name= each get their own folder (they collided in
    runs/run before); a name given on the command line is kept."""
    from equissl.app.cli import unique_run_name

    assert unique_run_name(["esimclr", "demo"], tmp_path, now=0).startswith("esimclr-demo-19")
    first = unique_run_name(["smoke"], tmp_path, now=0)
    (tmp_path / first).mkdir()
    assert unique_run_name(["smoke"], tmp_path, now=0) == f"{first}-2"
    assert unique_run_name([], tmp_path).startswith("run-")
    argv = ["pretrain", "simclr", "smoke", "optim.epochs=0", "eval.at_end=false"]
    for _ in range(2):
        assert main([*argv, f"out_dir={tmp_path / 'runs'}"]) == 0
    assert len(list((tmp_path / "runs").iterdir())) == 2
    assert "continue it with name=simclr-smoke-" in capsys.readouterr().out
    assert main([*argv, f"out_dir={tmp_path / 'named'}", "name=mine"]) == 0
    assert [p.name for p in (tmp_path / "named").iterdir()] == ["mine"]
