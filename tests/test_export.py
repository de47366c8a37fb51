"""`equissl export` and `equissl.load_backbone`: the trained encoder on its own."""

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

import equissl
from equissl.augment import to_float
from equissl.cli import main
from equissl.config import build_config, load_config_file
from equissl.encoder import (
    BackboneFileError,
    CheckpointError,
    Encoder,
    ExportError,
    ImageShapeError,
    export_backbone,
    extract_features,
)
from equissl.errors import DataError, UserError
from equissl.methods import Method
from equissl.runner import pretrain

TINY = [
    "data.limit=64",
    "data.test_limit=20",
    "data.size=12",
    "backbone.width=4",
    "optim.batch_size=32",
    "optim.epochs=1",
    "optim.warmup_epochs=0",
    "trainer.accelerator=cpu",
    "trainer.progress_bar=false",
    "eval.at_end=false",
]
RUNS = {
    "resnet": ["simclr"],
    "eqresnet": ["esimclr", "backbone=eqresnet18", "group=c4"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two real tiny pretraining runs (2 steps each): a ResNet-18 and a C4 EqResNet-18."""
    root = tmp_path_factory.mktemp("runs")
    for name, (preset, *extra) in RUNS.items():
        pretrain(build_config([preset], [*TINY, *extra, f"name={name}", f"out_dir={root}"]))
    return root


def _method(run_dir):
    """The checkpoint's Method, rebuilt from the run's config.yaml, in eval mode."""
    cfg = load_config_file(run_dir / "config.yaml")
    ones = torch.ones(3)
    method = Method(cfg, in_channels=3, image_size=12, num_classes=10, mean=ones * 0, std=ones)
    state = torch.load(run_dir / "last.ckpt", map_location="cpu", weights_only=False)
    method.load_state_dict(
        {k.removeprefix("method."): v for k, v in state["state_dict"].items()}, strict=True
    )
    return method.eval()


def _export(runs, tmp_path, name):
    out = tmp_path / name / "backbone.safetensors"
    export_backbone(runs / name / "last.ckpt", out)
    return out


def _images(n=6, seed=0):
    return torch.rand(n, 3, 12, 12, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", list(RUNS))
def test_export_then_load_reproduces_the_checkpoints_encoder(runs, tmp_path, name):
    out = _export(runs, tmp_path, name)
    encoder = equissl.load_backbone(out)
    method = _method(runs / name)
    assert isinstance(encoder, Encoder) and not encoder.training
    assert not any(m.training for m in encoder.modules())
    x = _images()
    with torch.no_grad():
        assert torch.equal(encoder(x), method.encode(x))
        assert torch.equal(
            encoder.orientation_features(x),
            method.backbone.orientation_features(method.normalize(x)),
        )
    assert encoder.num_features == method.backbone.num_features
    assert encoder.image_size == 12
    assert encoder.config["run_name"] == name
    # the file holds the backbone's persistent state exactly, BN running statistics included
    tensors = load_file(str(out))
    expected = method.backbone.state_dict()
    assert tensors.keys() == expected.keys()
    assert all(torch.equal(tensors[k], v) for k, v in expected.items())
    assert any(k.endswith("running_var") for k in tensors)
    assert not any(k.startswith("backbone.") for k in tensors)
    non_persistent = {
        f"{mod}.{buf}".lstrip(".")
        for mod, m in method.backbone.named_modules()
        for buf in m._non_persistent_buffers_set
    }
    assert bool(non_persistent) == (name == "eqresnet")  # the group convolutions' index
    assert not non_persistent & tensors.keys()


def test_eqresnet_features_are_rotation_invariant_and_orientations_permute(runs, tmp_path):
    encoder = equissl.load_backbone(_export(runs, tmp_path, "eqresnet"))
    x = _images()
    rotated = torch.rot90(x, 1, dims=(-2, -1))
    with torch.no_grad():
        assert torch.allclose(encoder(rotated), encoder(x), atol=1e-5)
        o, o_rot = encoder.orientation_features(x), encoder.orientation_features(rotated)
    assert o.shape == (6, encoder.num_features, 4) and encoder.group_order == 4
    assert torch.allclose(torch.sort(o_rot, -1).values, torch.sort(o, -1).values, atol=1e-5)


def test_cli_export_writes_weights_and_description(runs, tmp_path, capsys):
    out = tmp_path / "export" / "eq.safetensors"
    assert main(["export", f"ckpt={runs / 'eqresnet' / 'last.ckpt'}", f"out={out}"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out} and {out.with_suffix('.json')}"
    assert sorted(p.name for p in out.parent.iterdir()) == ["eq.json", "eq.safetensors"]
    info = json.loads(out.with_suffix(".json").read_text())
    method = _method(runs / "eqresnet")
    assert info["format"] == "equissl-backbone" and info["format_version"] == 1
    assert info["backbone"] == {
        "name": "eqresnet18",
        "stem": "cifar",
        "width": 4,
        "group": "c4",
        "fields": 0,
        "in_channels": 3,
    }
    assert info["num_features"] == method.backbone.num_features
    assert info["group_order"] == 4
    assert info["mean"] == method.mean.tolist() and info["std"] == method.std.tolist()
    assert info["image_size"] == 12
    assert info["checkpoint"] == str((runs / "eqresnet" / "last.ckpt").resolve())
    assert info["run_name"] == "eqresnet"
    assert info["method"] == "simclr+rotation:predict"
    assert info["equissl_version"] == equissl.__version__
    main(["--help"])
    assert "export ckpt=PATH out=FILE.safetensors" in capsys.readouterr().out


def test_uint8_images_and_batched_extraction(runs, tmp_path):
    encoder = equissl.load_backbone(_export(runs, tmp_path, "resnet"))
    u8 = torch.randint(0, 256, (10, 3, 12, 12), dtype=torch.uint8)
    with torch.no_grad():
        features = encoder(u8)
        assert torch.equal(features, encoder(to_float(u8)))  # the conversion training uses
        assert torch.allclose(features, encoder(u8.float() / 255), atol=1e-5)
    batched = extract_features(encoder, u8, batch_size=3)
    assert batched.shape == (10, encoder.num_features) and batched.device.type == "cpu"
    assert not batched.requires_grad
    assert torch.allclose(batched, features, atol=1e-6)
    orientations = extract_features(encoder, u8, batch_size=4, orientations=True)
    assert orientations.shape == (10, encoder.num_features, 1)
    assert extract_features(encoder, u8[:0]).shape == (0, encoder.num_features)
    assert equissl.extract_features is extract_features


def test_import_equissl_stays_light():
    code = "import sys, equissl; assert 'torch' not in sys.modules; print(equissl.load_backbone)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --- errors a user can cause -----------------------------------------------------------------


def _cli_fails(capsys, argv, expected, folder=None):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("equissl: error: "), err
    assert expected in err, err
    if folder is not None and folder.exists():
        assert list(folder.iterdir()) == []  # nothing written, not even a temporary file


def test_export_errors(runs, tmp_path, capsys):
    ckpt = runs / "resnet" / "last.ckpt"
    out = tmp_path / "out"
    out.mkdir()
    target = f"out={out / 'b.safetensors'}"
    _cli_fails(capsys, ["export", target], "export needs ckpt=PATH out=FILE.safetensors", out)
    _cli_fails(capsys, ["export", f"ckpt={ckpt}"], "export needs ckpt=PATH out=", out)
    _cli_fails(capsys, ["export", f"ckpt={ckpt}", target, "x=1"], "export needs", out)
    _cli_fails(
        capsys,
        ["export", f"ckpt={ckpt}", f"out={out / 'b.pt'}"],
        f"out={out / 'b.pt'} must be a file name ending in .safetensors",
        out,
    )
    _cli_fails(
        capsys, ["export", f"ckpt={tmp_path / 'none.ckpt'}", target], "checkpoint not found", out
    )
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    _cli_fails(capsys, ["export", f"ckpt={garbage}", target], "cannot read checkpoint", out)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"layer.weight": torch.zeros(2)}}, foreign)
    _cli_fails(
        capsys,
        ["export", f"ckpt={foreign}", target],
        f"{foreign} is not an equissl checkpoint; give the last.ckpt",
        out,
    )
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    _cli_fails(
        capsys,
        ["export", f"ckpt={ckpt}", f"out={a_file / 'b.safetensors'}"],
        f"{a_file} is not a folder",
        out,
    )
    for error, call in [
        (CheckpointError, lambda: export_backbone(tmp_path / "none.ckpt", out / "b.safetensors")),
        (ExportError, lambda: export_backbone(ckpt, out / "b.json")),
    ]:
        with pytest.raises(error):
            call()
        assert issubclass(error, UserError)


def test_export_refuses_an_unwritable_folder(runs, tmp_path, capsys, monkeypatch):
    out = tmp_path / "locked"
    out.mkdir()
    monkeypatch.setattr("equissl.encoder.os.access", lambda path, mode: False)
    _cli_fails(
        capsys,
        ["export", f"ckpt={runs / 'resnet' / 'last.ckpt'}", f"out={out / 'b.safetensors'}"],
        f"folder {out} is not writable",
        out,
    )


def test_a_failed_write_leaves_no_file_behind(runs, tmp_path, monkeypatch):
    import equissl.reports.atomic as atomic

    real = atomic.write_bytes_atomic

    def failing(path, data):
        if str(path).endswith(".json"):
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(atomic, "write_bytes_atomic", failing)
    with pytest.raises(ExportError, match="No space left on device"):
        export_backbone(runs / "resnet" / "last.ckpt", tmp_path / "b.safetensors")
    assert list(tmp_path.iterdir()) == []


def _rewrite_json(out, change):
    path = out.with_suffix(".json")
    info = json.loads(path.read_text())
    change(info)
    path.write_text(json.dumps(info))


def test_load_backbone_errors(runs, tmp_path):
    out = _export(runs, tmp_path, "resnet")
    description = out.with_suffix(".json")
    original = description.read_text()
    with pytest.raises(BackboneFileError, match="backbone file not found: .*missing.safetensors"):
        equissl.load_backbone(tmp_path / "missing.safetensors")
    assert issubclass(BackboneFileError, DataError)

    description.rename(tmp_path / "elsewhere.json")
    with pytest.raises(BackboneFileError, match="backbone.json not found; equissl export writes"):
        equissl.load_backbone(out)
    (tmp_path / "elsewhere.json").rename(description)

    malformed = [
        ("{not json", "malformed backbone description .*backbone.json: Expecting"),
        ("[1, 2]", "expected a JSON object"),
        ('{"format_version": 1}', "no 'backbone' object"),
        ('{"format_version": 99, "backbone": {}}', "format_version 99, newer .* upgrade equissl"),
    ]
    for text, message in malformed:
        description.write_text(text)
        with pytest.raises(BackboneFileError, match=message):
            equissl.load_backbone(out)
    description.write_text(original)
    edits = [
        (lambda i: i["backbone"].pop("stem"), "'backbone' lacks stem"),
        (lambda i: i.update(mean=[0.5]), r"'mean' must list one number per input channel \(3\)"),
        (lambda i: i["backbone"].update(name="vgg"), "unknown backbone 'vgg'"),
        (
            lambda i: i["backbone"].update(width=8),
            r"do not match the architecture in .*backbone.json: wrong shapes \(file vs model: "
            r"stem.0.weight \(4, 3, 3, 3\) vs \(8, 3, 3, 3\)",
        ),
        (
            lambda i: i["backbone"].update(name="resnet34"),
            r"missing 96 keys \(stages.0.2.conv1.weight, ",
        ),
        (
            lambda i: (i["backbone"].update(in_channels=1), i.update(mean=[0.5], std=[0.2])),
            r"wrong shapes \(file vs model: stem.0.weight \(4, 3, 3, 3\) vs \(4, 1, 3, 3\)",
        ),
    ]
    for edit, message in edits:
        _rewrite_json(out, edit)
        with pytest.raises(BackboneFileError, match=message):
            equissl.load_backbone(out)
        description.write_text(original)

    tensors = load_file(str(out))
    save_file({**tensors, "extra.weight": torch.zeros(1)}, str(out))
    with pytest.raises(BackboneFileError, match=r"unexpected 1 keys \(extra.weight\)"):
        equissl.load_backbone(out)
    out.write_bytes(b"\x00" * 5)
    with pytest.raises(BackboneFileError, match="cannot read backbone weights"):
        equissl.load_backbone(out)


def test_images_of_the_wrong_shape_or_type_are_refused(runs, tmp_path):
    encoder = equissl.load_backbone(_export(runs, tmp_path, "resnet"))
    for images in (torch.rand(2, 1, 12, 12), torch.rand(3, 12, 12)):
        with pytest.raises(
            ImageShapeError, match=r"takes 3-channel images of shape \(N, 3, H, W\)"
        ):
            encoder(images)
    with pytest.raises(ImageShapeError, match="float in \\[0, 1\\] or uint8"):
        extract_features(encoder, torch.zeros(2, 3, 12, 12, dtype=torch.int64))
    with pytest.raises(ImageShapeError, match="must be a torch tensor"):
        encoder([[0.0]])
    assert issubclass(ImageShapeError, UserError)


def test_a_checkpoint_without_its_config_entry_uses_config_yaml_beside_it(runs, tmp_path, capsys):
    ckpt = torch.load(runs / "resnet" / "last.ckpt", map_location="cpu", weights_only=False)
    del ckpt["equissl_config"]
    old = tmp_path / "old"
    old.mkdir()
    torch.save(ckpt, old / "last.ckpt")
    out = tmp_path / "out" / "b.safetensors"
    _cli_fails(
        capsys,
        ["export", f"ckpt={old / 'last.ckpt'}", f"out={out}"],
        "is not an equissl checkpoint",
        out.parent,
    )
    assert not out.parent.exists()
    (old / "config.yaml").write_text((runs / "resnet" / "config.yaml").read_text())
    export_backbone(old / "last.ckpt", out)
    x = _images()
    with torch.no_grad():
        assert torch.equal(equissl.load_backbone(out)(x), _method(runs / "resnet").encode(x))
