"""Fields where null means automatic: the old spelling 0 still reads as null, with one note."""

import pytest
import torch

from equissl.app import config as config_module
from equissl.app.config import NULL_AUTO, build_config, concrete_keys
from equissl.app.runner import read_resume_step
from equissl.errors import ConfigError, UserError


def test_every_null_auto_field_defaults_to_null_or_a_number():
    cfg = build_config(["esimclr"])
    for pattern in NULL_AUTO:
        keys = concrete_keys(cfg, pattern)
        assert keys, pattern
        for key in keys:
            value = config_module.OmegaConf.select(cfg, key)
            assert value is None or value > 0, key


def test_zero_reads_as_null_with_one_note_per_key(capsys, monkeypatch):
    monkeypatch.setattr(config_module, "_noted", set())
    zeros = ["augment.size=0", "method.equivariance.0.size=0", "optim.bias_lr=0"]
    cfg = build_config(["esimclr"], zeros)
    again = build_config(["esimclr"], ["augment.size=0"])
    assert cfg.augment.size is None and cfg.method.equivariance[0].size is None
    assert cfg.optim.bias_lr is None and again.augment.size is None
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and all(line.startswith("equissl: warning: ") for line in lines)
    assert "augment.size=0 is deprecated; write augment.size=null" in lines[0]
    assert build_config(["esimclr"], ["augment.size=null"]) == again


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("augment.size=-3", "'augment.size': -3; it must be positive or null"),
        ("backbone.fields=-1", "'backbone.fields'"),
        ("augment.blur_kernel=4", "an odd size, or null"),
    ],
)
def test_negative_or_even_values_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        build_config(["simclr"], [override])


def test_a_checkpoint_saved_with_zeros_resumes_under_nulls(tmp_path):
    cfg = build_config(["esimclr"])
    saved = config_module.OmegaConf.to_container(cfg, resolve=True)
    saved["augment"]["size"] = 0  # as a run before null meant automatic saved it
    saved["method"]["equivariance"][0]["head_hidden"] = 0
    last = tmp_path / "last.ckpt"
    torch.save({"global_step": 7, "equissl_config": saved, "state_dict": {}}, last)
    assert read_resume_step(last, cfg) == 7
    saved["augment"]["scale_min"] = 0.3  # a real difference still stops the resume
    torch.save({"global_step": 7, "equissl_config": saved, "state_dict": {}}, last)
    with pytest.raises(UserError, match="augment.scale_min=0.3"):
        read_resume_step(last, cfg)


@pytest.mark.parametrize(
    ("old", "key", "new"),
    [
        ("augment.invariance=cropflip", "augment.pipeline", "cropflip"),
        ("method.equivariance.0.role=invariance", "method.equivariance.0.role", "augment"),
        ("method.equivariance.0.role=off", "method.equivariance.0.role", "none"),
    ],
)
def test_old_spellings_read_as_the_new_with_a_note(old, key, new, capsys, monkeypatch):
    monkeypatch.setattr(config_module, "_noted", set())
    cfg = build_config(["esimclr"], [old])
    assert config_module.OmegaConf.select(cfg, key) == new and cfg.augment.invariance is None
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("equissl: warning: ") and "deprecated; write" in line
    assert cfg == build_config(["esimclr"], [f"{key}={new}"])


def test_a_checkpoint_saved_with_old_names_resumes_under_the_new(tmp_path):
    cfg = build_config(["esimclr"], ["method.equivariance.0.role=augment"])
    saved = config_module.OmegaConf.to_container(cfg, resolve=True)
    saved["augment"]["invariance"] = saved["augment"].pop("pipeline")  # as saved before
    saved["method"]["equivariance"][0]["role"] = "invariance"
    last = tmp_path / "last.ckpt"
    torch.save({"global_step": 3, "equissl_config": saved, "state_dict": {}}, last)
    assert read_resume_step(last, cfg) == 3
