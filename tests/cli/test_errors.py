"""Bad CLI input: one line on stderr naming the problem, exit status 2, nothing written."""

import subprocess
import sys

import pytest

from equissl.app.cli import main


@pytest.mark.parametrize(
    "argv,expected",
    [
        (
            ["pretrain", "data.nme=digits"],
            "unknown config key 'data.nme' (did you mean data.name?)",
        ),
        (
            ["pretrain", "data.name=emnist"],
            "choose one of digits, cifar10, cifar100, stl10, imagefolder, mnist",
        ),
        (["pretrain", "optim.lr=fast"], "bad value for 'optim.lr'"),
        (
            ["pretrain", "esimclr", "method.equivariance.0.transform=augment"],
            "'augment' stands alone and needs mode=care",
        ),
        (
            ["pretrain", "care", "method.equivariance.0.chunks=0"],
            "bad care settings for 'method.equivariance.0': chunks >= 1",
        ),
        (["pretrain", "eval.geometry=[spin]"], "bad value for 'eval.geometry.0': 'spin'"),
        (["pretrain", "care", "optim.batch_size=16"], "fewer than 2 images per chunk"),
        (
            ["pretrain", "care-only", "method.equivariance.0.uniformity=0"],
            "a care term without an invariance loss collapses",
        ),
        (
            ["pretrain", "care", "method.equivariance.0.augment=none"],
            "transform=augment with augment=none gives two identical copies",
        ),
        (
            ["pretrain", "data.channels=1", "eval.hue_sensitivity=true"],
            "eval.hue_sensitivity needs colour images",
        ),
        (["experiment", "care", "scale=huge"], "unknown scale 'huge' for care"),
        (["pretrain", "optim.lr=-1"], "'optim.lr': -1.0; it must be positive"),
        (["pretrain", "nosuchpreset"], "unknown preset 'nosuchpreset'"),
        (
            ["pretrain", "backbone.name=vgg"],
            "choose one of resnet18, resnet34, resnet50, eqresnet18, eqresnet34",
        ),
        (
            ["pretrain", "backbone=eqresnet18", "group=c8"],
            "'backbone.group': 'c8'; choose one of c4, d4",
        ),
        (["pretrain", "backbone=eqresnet18", "backbone.fields=-1"], "'backbone.fields': -1"),
        (["pretrain", "method.equivariance.0.transform=rot"], "does not exist"),
        (["pretrain", "esimclr", "method.equivariance.0.mode=guess"], "choose one of predict"),
        (["pretrain", "method.invariance=none"], "needs at least one method.equivariance term"),
        (["pretrain", "data.name=cifar10"], "data.path"),
        (["pretrain", "data.name=cifar10", "data.path=/no/such/dir"], "/no/such/dir"),
        (["pretrain", "demo", "optim.batch_size=5000"], "larger than the 1438 training images"),
        (
            ["pretrain", "demo", "eval.linear.epochs=0"],
            "'eval.linear.epochs': 0; it must be positive",
        ),
        (
            ["pretrain", "pretext", "method.equivariance.0.transform=spin"],
            "bad value for 'method.equivariance.0.transform': 'spin'; choose one of rotation",
        ),
        (["pretrain", "pretext", "method.equivariance.0.transform=rotation+spin"], "'spin'"),
        (
            ["pretrain", "pretext", "method.equivariance.0.role=ignore"],
            "choose one of equivariance, augment, none",
        ),
        (
            ["pretrain", "pretext", "method.equivariance.0.role=augment"],
            "needs at least one method.equivariance term with role=equivariance",
        ),
        (
            ["pretrain", "pretext", "method.equivariance.0.mode=regress"],
            "'rotation'; choose one of crop, jitter",
        ),
        (
            [
                "pretrain",
                "pretext",
                "method.equivariance.0.mode=relative",
                "optim.epochs=1",
                "method.equivariance.0.transform=blur",
            ],
            "'blur' is not one",
        ),
        (["pretrain", "eval.equivariance=[spin]"], "'eval.equivariance.0': 'spin'"),
        (["pretrain", "method.classifier=adversarial"], "choose one of detached, joint, eliminate"),
        (["experiment", "nosuch"], "experiment needs one name"),
        (["experiment", "transformations", "scale=huge"], "unknown scale 'huge'"),
        (["eval"], "eval needs ckpt=PATH"),
        (["eval", "ckpt=/no/such.ckpt"], "checkpoint not found: /no/such.ckpt"),
        (["frobnicate"], "unknown command 'frobnicate'"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert expected in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.ckpt"))


def test_subprocess_exit_status_and_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "equissl", "pretrain", "augment.pipeline=blur"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "equissl: error: bad value for 'augment.pipeline': 'blur'; choose one of simclr, cropflip, none"
    ]


def test_presets_and_help(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "esimclr" in out and "simclr" in out
    assert main(["--help"]) == 0
    assert "pretrain" in capsys.readouterr().out
