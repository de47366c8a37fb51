"""`equissl export`: a run's backbone on its own, for `equissl.load_backbone`.

`export_backbone(ckpt, out)` reads an `equissl pretrain` checkpoint (through
`equissl.app.runs.read_checkpoint`) and writes `out` (.safetensors: the backbone's weights, and
its description in the metadata) and the description as `out` with suffix .json; the format is
described, and read back, in equissl.encoder.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import secrets
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from equissl.app.outputs import check_file_writable, check_writable
from equissl.app.runs import (
    CheckpointError,
    _one_line,
    backbone_label,
    method_label,
    read_checkpoint,
)
from equissl.data.load import NATIVE_SIZES
from equissl.encoder import (
    FORMAT,
    FORMAT_VERSION,
    METADATA_KEY,
    json_path_of,
)
from equissl.errors import UserError
from equissl.finite import describe_nonfinite, nonfinite_names
from equissl.methods.build import backbone_of
from equissl.reports.atomic import temp_beside, write_text_atomic

# The backbone's keys in a checkpoint: "method." + PREFIX + the key in the export.
PREFIX = "backbone."


class ExportError(UserError):
    """The export destination (`out=`) is unusable."""


def check_destination(out: str | Path) -> Path:
    """`out` must end in .safetensors and lie in a folder that exists or can be made and is
    writable; nothing is created here."""
    out = Path(out)
    if out.suffix != ".safetensors" or out.name == ".safetensors":
        raise ExportError(f"out={out} must be a file name ending in .safetensors")
    if out.is_dir():
        raise ExportError(f"out={out} is a folder; give a file name ending in .safetensors")
    if json_path_of(out).is_dir():
        raise ExportError(f"cannot write {json_path_of(out)}: it is a folder")
    folder = out.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ExportError(f"cannot write {out}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {out}: folder {existing} is not writable")
    return out


def read_run_checkpoint(ckpt: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(saved configuration, model state) of an `equissl pretrain` checkpoint; the configuration
    comes from the checkpoint, or from config.yaml beside it for checkpoints that predate its
    `equissl_config` entry."""
    path = Path(ckpt)
    loaded = read_checkpoint(path)
    not_ours = CheckpointError(
        f"{path} is not an equissl checkpoint; give the last.ckpt of an equissl pretrain run"
    )
    if not isinstance(loaded, dict) or not isinstance(loaded.get("state_dict"), dict):
        raise not_ours
    state = loaded["state_dict"]
    if not any(k.startswith("method." + PREFIX) for k in state):
        raise not_ours
    saved = loaded.get("equissl_config")
    if not isinstance(saved, dict):
        beside = path.parent / "config.yaml"
        if not beside.is_file():
            raise not_ours
        from omegaconf import DictConfig, OmegaConf

        try:
            yaml = OmegaConf.load(beside)
            if not isinstance(yaml, DictConfig):
                raise ValueError("not a mapping")
            saved = OmegaConf.to_container(yaml, resolve=True)
        except Exception as exc:  # noqa: BLE001 - YAML errors come in many types
            raise CheckpointError(f"cannot read {beside}: {_one_line(exc)}") from None
    return saved, state


def training_image_size(cfg: Any) -> int | None:
    """The height of the images the run trained and evaluated on: data.size, else the source's
    own size (read from the first image of an image folder; None if it cannot be found)."""
    if cfg.data.size:
        return int(cfg.data.size)
    if cfg.data.name in NATIVE_SIZES:
        return NATIVE_SIZES[cfg.data.name]
    if cfg.data.name != "imagefolder" or not cfg.data.path:
        return None
    try:
        import io
        import zipfile

        from PIL import Image

        from equissl.data.imagefolder import list_images

        source = Path(cfg.data.path)
        first = list_images(source)[0]
        if source.is_dir():
            data = (source / first).read_bytes()
        else:
            with zipfile.ZipFile(source) as archive:
                data = archive.read(first)
        with Image.open(io.BytesIO(data)) as image:
            return int(image.size[1])
    except Exception:  # noqa: BLE001 - best effort: the data may not be here any more
        return None


def _version() -> str | None:
    from equissl.version import __version__

    return __version__


def describe(cfg: Any, backbone: nn.Module, mean, std, ckpt: Path, weights: Path) -> dict:
    """The JSON written beside the weights."""
    b = cfg.backbone
    image_size = training_image_size(cfg)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "weights": weights.name,
        "backbone": {
            "name": str(b.name),
            "stem": str(b.stem),
            "width": int(b.width),
            "group": str(b.group),
            "fields": int(b.fields) if b.fields else None,
            "downsample": str(b.downsample),
            "dropout": float(b.dropout),
            "pool": str(b.pool),
            "in_channels": int(cfg.data.channels),
        },
        "label": backbone_label(cfg),
        "num_features": int(backbone.num_features),
        "group_order": int(getattr(backbone, "group_order", 1)),
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "image_size": image_size,
        "view_size": cfg.augment.size or image_size,
        "checkpoint": str(ckpt.resolve()),
        "run_name": str(cfg.name),
        "method": method_label(cfg),
        "data": str(cfg.data.name),
        "equissl_version": _version(),
    }


def _config_of(saved: dict[str, Any], ckpt: Path):
    from omegaconf import OmegaConf

    from equissl.app.config import schema, upgrade_saved

    try:
        return OmegaConf.merge(schema(), OmegaConf.create(upgrade_saved(saved)))
    except Exception as exc:  # noqa: BLE001 - OmegaConf raises many kinds
        raise CheckpointError(
            f"the configuration saved in {ckpt} does not fit this equissl: {_one_line(exc)}"
        ) from None


def _backup_link(path: Path) -> Path | None:
    """A second name (hard link) for the existing file `path`, to put it back; None if there is
    no file or the file system cannot link."""
    if not path.is_file():
        return None
    backup = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.old.tmp")
    try:
        os.link(path, backup)
    except OSError:
        return None
    return backup


def write_export(weights: Path, weights_bytes: bytes, description: Path, text: bytes) -> None:
    """Replace the pair (weights, description): a failure leaves the previous pair as it was, a
    kill at any point leaves a pair that loads consistently (the old export or the new).

    Both files are written in full to temporary files beside their destinations first (a full
    disk fails here, with nothing replaced); then the weights are renamed into place, then the
    description. The weights describe themselves (metadata), so a kill between the renames
    leaves a consistent export; if the second rename fails, the previous weights are put back.
    Temporary files are removed on any failure; the destinations are never deleted.
    """
    weights.parent.mkdir(parents=True, exist_ok=True)
    temps: list[Path] = []
    try:
        temps.append(temp_beside(weights, weights_bytes))
        temps.append(temp_beside(description, text))
        backup = _backup_link(weights)
        if backup is not None:
            temps.append(backup)
        os.replace(temps[0], weights)
        try:
            os.replace(temps[1], description)
        except BaseException:
            if backup is not None:
                os.replace(backup, weights)
            raise
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def trained_backbone(ckpt: str | Path) -> tuple[Any, nn.Module, list[float], list[float]]:
    """(configuration, backbone with the checkpoint's weights, mean, std) of an `equissl
    pretrain` checkpoint, checked: whole, finite, and matching its own configuration."""
    ckpt = Path(ckpt)
    saved, full = read_run_checkpoint(ckpt)
    cfg = _config_of(saved, ckpt)
    if "method.mean" not in full or "method.std" not in full:
        raise CheckpointError(f"{ckpt} has no normalisation statistics (method.mean/std)")
    prefix = "method." + PREFIX
    state = {k.removeprefix(prefix): v for k, v in full.items() if k.startswith(prefix)}
    bad = nonfinite_names(
        {
            **{PREFIX + k: v for k, v in state.items()},
            "method.mean": full["method.mean"],
            "method.std": full["method.std"],
        }
    )
    if bad:
        raise CheckpointError(
            f"checkpoint {ckpt} holds non-finite weights ({describe_nonfinite(bad)}); it cannot "
            "be exported: retrain with a lower optim.lr"
        )
    mean = full["method.mean"].float().flatten().tolist()
    std = full["method.std"].float().flatten().tolist()
    try:
        backbone = backbone_of(
            cfg.backbone,
            in_channels=cfg.data.channels,
            image_size=training_image_size(cfg) or 32,
        )
        backbone.load_state_dict(state, strict=True)
    except (ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"checkpoint {ckpt} does not match its own configuration: {_one_line(exc, 300)}"
        ) from None
    return cfg, backbone, mean, std


def _export_files(ckpt: str | Path, out: Path) -> tuple[Any, dict, bytes, bytes]:
    """(configuration, description, .safetensors bytes with the description in its metadata,
    the description as JSON text) of a checkpoint's backbone, for weights named `out`."""
    from safetensors.torch import save

    cfg, backbone, mean, std = trained_backbone(ckpt)
    tensors = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    info = describe(cfg, backbone, mean, std, Path(ckpt), out)
    metadata = {"format": FORMAT, "version": str(FORMAT_VERSION), METADATA_KEY: json.dumps(info)}
    text = (json.dumps(info, indent=2) + "\n").encode("utf-8")
    return cfg, info, save(tensors, metadata=metadata), text


def _write_pair(out: Path, weights_bytes: bytes, description: Path, text: bytes) -> None:
    try:
        write_export(out, weights_bytes, description, text)
    except OSError as exc:
        why = exc.strerror or _one_line(exc)
        raise ExportError(f"cannot write {out} and {description.name}: {why}") from None


def export_backbone(ckpt: str | Path, out: str | Path) -> tuple[Path, Path]:
    """Write the backbone of an `equissl pretrain` checkpoint to `out` (.safetensors, its
    description in its metadata) and the description to `out` with suffix .json (see
    `write_export`). Returns (weights, json) paths."""
    out = check_destination(out)
    _, _, weights_bytes, text = _export_files(ckpt, out)
    description = json_path_of(out)
    _write_pair(out, weights_bytes, description, text)
    return out, description


HUB_WEIGHTS, HUB_CONFIG, HUB_CARD = "model.safetensors", "config.json", "README.md"
CARD_RESULTS = (
    "linear_acc",
    "linear_std",
    "linear_aug_acc",
    "knn_acc",
    "online_acc",
    "transform_acc",
)


def _rounded(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]"


def model_card(info: dict, config_yaml: str, results: dict) -> str:
    """A model hub's README.md: what the backbone is, how it was trained, its results, and how
    to load it."""
    rows = [
        f"| {k} | {results[k]:.2f} |"
        for k in CARD_RESULTS
        if isinstance(results.get(k), float | int)
    ]
    table = "\n".join(["| metric | value |", "|---|---:|", *rows]) if rows else "(no results file)"
    return f"""---
library_name: equissl
tags: [self-supervised-learning, equivariance, {info["method"].split("+")[0]}]
---

# {info["label"]} pretrained with {info["method"]} on {info["data"]}

An encoder exported by equissl (`equissl export format=hub`): a
{info["backbone"]["name"]} backbone ({info["num_features"]} features) trained with
`{info["method"]}` on `{info["data"]}` images of {info["image_size"]}x{info["image_size"]} pixels.

## Use

```python
import equissl

encoder = equissl.load_backbone("path/to/this/folder")  # float images in [0, 1], or uint8
features = encoder(images)  # (N, {info["num_features"]})
```

The training normalisation (mean {_rounded(info["mean"])}, std {_rounded(info["std"])}) is
applied inside.

## Results at the end of pretraining

{table}

## Training configuration

```yaml
{config_yaml.rstrip()}
```
"""


def export_hub(ckpt: str | Path, folder: str | Path) -> Path:
    """A folder a model hub accepts: `model.safetensors` (the weights, described in their
    metadata), `config.json` (the description) and `README.md` (a model card with the training
    configuration and the run's results); `equissl.load_backbone(folder)` reads it back."""
    from equissl.app.config import to_yaml

    folder = Path(folder)
    if folder.suffix in (".safetensors", ".json", ".onnx") or folder.is_file():
        raise ExportError(f"out={folder} must be a folder for format=hub")
    check_writable(folder, "export folder")
    weights = folder / HUB_WEIGHTS
    cfg, info, weights_bytes, text = _export_files(ckpt, weights)
    results_file = Path(ckpt).parent / "results.json"
    try:
        results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    except (OSError, ValueError):
        results = {}
    folder.mkdir(parents=True, exist_ok=True)
    _write_pair(weights, weights_bytes, folder / HUB_CONFIG, text)
    write_text_atomic(folder / HUB_CARD, model_card(info, to_yaml(cfg), results))
    return folder


class _Normalised(nn.Module):
    """Float images in [0, 1] -> features: the training normalisation, then the backbone (what
    an ONNX runtime runs, with no Python around it)."""

    def __init__(self, backbone: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone((images - self.mean) / self.std)


def export_onnx(ckpt: str | Path, out: str | Path) -> Path:
    """Write the backbone of a checkpoint as an ONNX model `out` (.onnx): input `images`, float
    (N, C, H, W) in [0, 1] at the training size (any N), output `features` (N, D); the
    normalisation is inside. Written to a temporary file beside it, then renamed."""
    out = Path(out)
    if out.suffix != ".onnx" or out.name == ".onnx":
        raise ExportError(f"out={out} must be a file name ending in .onnx")
    check_file_writable(out, "ONNX model")
    try:
        import onnx  # noqa: F401 - torch's exporter needs both
        import onnxscript  # noqa: F401
    except ImportError:
        raise ExportError(
            "ONNX export needs the onnx and onnxscript packages: pip install 'equissl[onnx]'"
        ) from None
    cfg, backbone, mean, std = trained_backbone(ckpt)
    size = training_image_size(cfg) or 32
    model = _Normalised(backbone.eval(), mean, std).eval()
    example = torch.rand(2, cfg.data.channels, size, size)
    batch = torch.export.Dim("batch", min=1)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    quiet = logging.getLogger("torch.onnx")  # its notes on torchvision ops we never use
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                input_names=["images"],
                output_names=["features"],
                dynamic_shapes={"images": {0: batch}},
            )
            program.save(str(tmp))
        os.replace(tmp, out)
    except OSError as exc:
        raise ExportError(f"cannot write {out}: {exc.strerror or _one_line(exc)}") from None
    finally:
        quiet.setLevel(level)
        tmp.unlink(missing_ok=True)
    return out
