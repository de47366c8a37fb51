"""`equissl export` and `equissl.load_backbone`: the trained encoder on its own."""

import errno
import json
import math
import os
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import equissl
from equissl.app.cli import main
from equissl.app.config import build_config, load_config_file
from equissl.app.export import CheckpointError, ExportError, export_backbone
from equissl.app.runner import pretrain
from equissl.augment import to_float
from equissl.encoder import (
    BackboneFileError,
    Encoder,
    ImageShapeError,
    extract_features,
)
from equissl.errors import DataError, UserError
from equissl.methods import build_method

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
    method = build_method(
        cfg, in_channels=3, image_size=12, num_classes=10, mean=ones * 0, std=ones
    )
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
        "fields": None,
        "downsample": "avg",
        "dropout": 0.0,
        "pool": "mean",
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
    (tmp_path / "taken" / "b.json").mkdir(parents=True)
    _cli_fails(
        capsys,
        ["export", f"ckpt={ckpt}", f"out={tmp_path / 'taken' / 'b.safetensors'}"],
        f"cannot write {tmp_path / 'taken' / 'b.json'}: it is a folder",
    )
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["b.json"]
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
    monkeypatch.setattr("equissl.app.export.os.access", lambda path, mode: False)
    _cli_fails(
        capsys,
        ["export", f"ckpt={runs / 'resnet' / 'last.ckpt'}", f"out={out / 'b.safetensors'}"],
        f"folder {out} is not writable",
        out,
    )


def _rewrite_json(out, change):
    path = out.with_suffix(".json")
    info = json.loads(path.read_text())
    change(info)
    path.write_text(json.dumps(info))


def _metadata(out):
    with safe_open(str(out), framework="pt") as f:
        return f.metadata()


def _resave(out, tensors=None, **metadata):
    """Rewrite the weights file `out` with `tensors` (default: its own) and `metadata` (default:
    what exports before the self-describing metadata wrote)."""
    tensors = load_file(str(out)) if tensors is None else tensors
    save_file(
        tensors, str(out), metadata={"format": "equissl-backbone", "version": "1", **metadata}
    )


def test_load_backbone_errors(runs, tmp_path):
    out = _export(runs, tmp_path, "resnet")
    description = out.with_suffix(".json")
    original = description.read_text()
    with pytest.raises(BackboneFileError, match="backbone file not found: .*missing.safetensors"):
        equissl.load_backbone(tmp_path / "missing.safetensors")
    assert issubclass(BackboneFileError, DataError)

    # the weights describe themselves: the same checks run on their metadata
    own = _metadata(out)["equissl"]
    for text, message in [
        (
            "{not json",
            r"malformed backbone description .*backbone.safetensors \(metadata "
            r"'equissl'\): Expecting",
        ),
        (json.dumps({**json.loads(own), "backbone": {}}), "'backbone' lacks name"),
        (json.dumps({**json.loads(own), "std": [1, 0, 1]}), "'std' values must be positive"),
    ]:
        _resave(out, equissl=text)
        with pytest.raises(BackboneFileError, match=message):
            equissl.load_backbone(out)

    _resave(out)  # an export from before the metadata: described by the .json beside it
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
    with pytest.raises(ImageShapeError, match=r"must be in \[0, 1\]; these span \[0, 255\]"):
        encoder(torch.linspace(0, 255, 2 * 3 * 12 * 12).reshape(2, 3, 12, 12))
    with pytest.raises(ImageShapeError, match="must be in"):
        encoder(torch.full((1, 3, 12, 12), -0.5))
    encoder(torch.full((1, 3, 12, 12), 1.0005))  # rounding just past 1 is accepted
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


# --- crash safety and non-finite weights -----------------------------------------------------


def _previous_export(runs, tmp_path):
    """A good export of the resnet run at tmp_path/out/b.safetensors: (weights, json, their
    bytes)."""
    out = tmp_path / "out" / "b.safetensors"
    export_backbone(runs / "resnet" / "last.ckpt", out)
    description = out.with_suffix(".json")
    return out, description, (out.read_bytes(), description.read_bytes())


def _fail_call(monkeypatch, name, n, error, folder):
    """Make the n-th call of os.<name> raise `error`, the others run as usual; returns the list
    of calls. At each call, the temporary files the export has made so far are in `folder`."""
    real, calls = getattr(os, name), []

    def fake(*args):
        calls.append([p.name for p in folder.iterdir() if p.name.endswith(".tmp")])
        if len(calls) == n:
            raise error
        return real(*args)

    monkeypatch.setattr(os, name, fake)
    return calls


@pytest.mark.parametrize(
    ("name", "n", "error"),
    [
        ("fsync", 1, OSError(errno.ENOSPC, "No space left on device")),  # writing the weights
        ("fsync", 2, OSError(errno.ENOSPC, "No space left on device")),  # writing the .json
        ("replace", 1, OSError(errno.EACCES, "Permission denied")),  # renaming the weights
        ("replace", 2, OSError(errno.EACCES, "Permission denied")),  # renaming the .json
    ],
)
def test_a_failed_export_keeps_the_previous_one(runs, tmp_path, monkeypatch, name, n, error):
    out, description, before = _previous_export(runs, tmp_path)
    calls = _fail_call(monkeypatch, name, n, error, out.parent)
    with pytest.raises(ExportError) as caught:
        export_backbone(runs / "eqresnet" / "last.ckpt", out)
    message = str(caught.value)
    assert message == f"cannot write {out} and b.json: {error.strerror}"
    assert (out.read_bytes(), description.read_bytes()) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["b.json", "b.safetensors"]
    if name == "fsync":
        assert len(calls[-1]) == n  # the failing file existed, and was removed
    else:
        assert len(calls) == n + (n == 2)  # after the second rename failed, one put back
    assert equissl.load_backbone(out).config["run_name"] == "resnet"


def test_the_weights_describe_themselves_so_any_pair_loads_consistently(runs, tmp_path):
    resnet = _export(runs, tmp_path, "resnet")
    eqresnet = _export(runs, tmp_path, "eqresnet")
    own = json.loads(_metadata(eqresnet)["equissl"])
    assert own == json.loads(eqresnet.with_suffix(".json").read_text())
    # a kill between the renames: one file of the new export beside one of the old
    resnet.with_suffix(".json").write_bytes(eqresnet.with_suffix(".json").read_bytes())
    x = _images()
    for weights, name in [(resnet, "resnet"), (eqresnet, "eqresnet")]:
        if name == "eqresnet":
            eqresnet.with_suffix(".json").write_bytes(b"stale: not even JSON")
        encoder = equissl.load_backbone(weights)
        assert encoder.config["run_name"] == name
        assert encoder.config == json.loads(_metadata(weights)["equissl"])
        with torch.no_grad():
            assert torch.equal(encoder(x), _method(runs / name).encode(x))
    eqresnet.with_suffix(".json").unlink()  # the .json is for people: the weights suffice
    assert equissl.load_backbone(eqresnet).config["run_name"] == "eqresnet"


def test_an_export_killed_between_its_renames_still_loads(runs, tmp_path):
    """Replacing an export from before the metadata (weights described only by the .json),
    killed right after its first rename: what is on disk loads as one consistent export."""
    out, description, _ = _previous_export(runs, tmp_path)
    _resave(out)
    old_json = description.read_bytes()
    code = (
        "import os\n"
        "from equissl.app.export import export_backbone\n"
        "real = os.replace\n"
        "def replace(src, dst):\n"
        "    real(src, dst)\n"
        "    os._exit(9)\n"
        "os.replace = replace\n"
        f"export_backbone({str(runs / 'eqresnet' / 'last.ckpt')!r}, {str(out)!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    assert description.read_bytes() == old_json  # killed before the second rename
    encoder = equissl.load_backbone(out)
    assert encoder.config["run_name"] == "eqresnet"
    x = _images()
    with torch.no_grad():
        assert torch.equal(encoder(x), _method(runs / "eqresnet").encode(x))
    export_backbone(runs / "eqresnet" / "last.ckpt", out)  # leftovers do not get in the way
    assert json.loads(description.read_text())["run_name"] == "eqresnet"


def test_old_exports_without_metadata_still_load(runs, tmp_path):
    out = _export(runs, tmp_path, "resnet")
    _resave(out)
    assert "equissl" not in _metadata(out)
    encoder = equissl.load_backbone(out)
    assert encoder.config == json.loads(out.with_suffix(".json").read_text())
    x = _images()
    with torch.no_grad():
        assert torch.equal(encoder(x), _method(runs / "resnet").encode(x))


def test_export_refuses_a_checkpoint_with_non_finite_weights(runs, tmp_path, capsys):
    ckpt = torch.load(runs / "resnet" / "last.ckpt", map_location="cpu", weights_only=False)
    key = next(k for k in ckpt["state_dict"] if k.endswith("running_var"))
    ckpt["state_dict"][key][0] = math.inf
    bad = tmp_path / "bad.ckpt"
    torch.save(ckpt, bad)
    out = tmp_path / "out" / "b.safetensors"
    _cli_fails(
        capsys,
        ["export", f"ckpt={bad}", f"out={out}"],
        f"checkpoint {bad} holds non-finite weights ({key.removeprefix('method.')}); it cannot "
        "be exported: retrain with a lower optim.lr",
    )
    assert not out.parent.exists()
    ckpt["state_dict"][key][0] = 1.0
    ckpt["state_dict"]["method.std"][1] = math.nan
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match=r"non-finite weights \(method.std\)"):
        export_backbone(bad, out)
    assert not out.parent.exists()


def test_load_backbone_refuses_non_finite_weights(runs, tmp_path):
    out = _export(runs, tmp_path, "resnet")
    tensors = load_file(str(out))
    tensors["stem.0.weight"][0, 0, 0, 0] = math.nan
    save_file(tensors, str(out), metadata=_metadata(out))
    with pytest.raises(BackboneFileError) as caught:
        equissl.load_backbone(out)
    assert str(caught.value) == (
        f"backbone weights {out} hold non-finite values (stem.0.weight); they cannot be used: "
        "export again from a checkpoint with finite weights"
    )


def test_onnx_export_runs_in_onnxruntime_like_the_encoder(runs, tmp_path, capsys):
    """`equissl export out=FILE.onnx`: onnxruntime on float images in [0, 1] (the normalisation
    is inside the model, any batch size) gives the loaded encoder's features within 1e-4."""
    import numpy as np
    import onnxruntime

    weights = _export(runs, tmp_path, "resnet")
    out = tmp_path / "onnx" / "backbone.onnx"
    assert main(["export", f"ckpt={runs / 'resnet' / 'last.ckpt'}", f"out={out}"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert sorted(p.name for p in out.parent.iterdir()) == ["backbone.onnx"]  # no temp left
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    encoder = equissl.load_backbone(weights)
    for n in (1, 5):
        images = _images(n, seed=n)
        got = session.run(["features"], {"images": images.numpy().astype(np.float32)})[0]
        want = encoder(images).detach().numpy()
        assert got.shape == want.shape and np.abs(got - want).max() < 1e-4
    assert (
        main(["export", f"ckpt={runs / 'resnet' / 'last.ckpt'}", "out=x.onnyx", "format=onnx"]) == 2
    )
    assert "must be a file name ending in .onnx" in capsys.readouterr().err


def test_hub_folder_round_trip(runs, tmp_path, capsys):
    """`equissl export format=hub out=DIR`: model.safetensors, config.json and a README.md
    model card; load_backbone(DIR) gives the same features as the plain export."""
    folder = tmp_path / "hub" / "esimclr-tiny"
    ckpt = runs / "eqresnet" / "last.ckpt"
    assert main(["export", f"ckpt={ckpt}", f"out={folder}", "format=hub"]) == 0
    assert f"wrote {folder}/" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    plain = equissl.load_backbone(_export(runs, tmp_path, "eqresnet"))
    hub = equissl.load_backbone(folder)
    images = _images(4)
    assert torch.equal(hub(images), plain(images))
    info = json.loads((folder / "config.json").read_text())
    assert info["weights"] == "model.safetensors" and info == hub.config
    card = (folder / "README.md").read_text()
    assert info["method"] in card and "equissl.load_backbone" in card and "backbone:" in card
    assert main(["export", f"ckpt={ckpt}", f"out={tmp_path / 'x.safetensors'}", "format=hub"]) == 2
    assert "must be a folder for format=hub" in capsys.readouterr().err
