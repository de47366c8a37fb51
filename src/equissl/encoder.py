"""The trained encoder on its own: export a run's backbone, load it back, extract features.

`equissl export ckpt=runs/<name>/last.ckpt out=backbone.safetensors` writes two files:

- `backbone.safetensors`: the backbone's state dict (parameters and persistent buffers such as
  BatchNorm running statistics), keys without the `backbone.` prefix, and in its metadata
  (key "equissl") the description below as JSON text, so the file describes itself;
- `backbone.json`: the description, for people and other tools: how to rebuild the backbone
  (`build_backbone` arguments), the normalisation mean and std the encoder was trained with,
  the training image size, and where it came from.

`load_backbone("backbone.safetensors")` reads the weights and their own description (the .json
only for exports that predate the metadata) and returns an `Encoder` in eval mode: float
images in [0, 1] (or uint8) of shape (N, C, H, W) in, (N, features) out, normalised exactly as
during training and `equissl eval`.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path
from typing import Any

import torch
from torch import nn

from equissl.augment.stats import normalize, to_float
from equissl.data.load import NATIVE_SIZES
from equissl.errors import DataError, UserError
from equissl.eval.features import extract_features  # noqa: F401 - equissl.extract_features
from equissl.finite import describe_nonfinite, nonfinite_names
from equissl.models import build_backbone
from equissl.reports.atomic import temp_beside

FORMAT = "equissl-backbone"
FORMAT_VERSION = 1
PREFIX = "backbone."
# The weights file's metadata key holding the description (the .json's content) as JSON text.
METADATA_KEY = "equissl"
BACKBONE_KEYS = ("name", "stem", "width", "group", "fields", "in_channels")


RANGE_SLACK = 1e-3  # float images may overshoot [0, 1] by rounding (resampling, colour maths)


class CheckpointError(UserError):
    """The checkpoint to export is missing, unreadable or not written by `equissl pretrain`."""


class ExportError(UserError):
    """The export destination (`out=`) is unusable."""


class BackboneFileError(DataError):
    """An exported backbone (.safetensors and its .json) is missing, malformed or mismatched."""


class ImageShapeError(UserError, ValueError):
    """Images given to an Encoder have the wrong type, rank or channel count."""


def _one_line(exc: BaseException, limit: int = 200) -> str:
    return " ".join(str(exc).split())[:limit]


# ---------------------------------------------------------------------------------------------
# The encoder


class Encoder(nn.Module):
    """A trained backbone with its normalisation: images in [0, 1] (or uint8) -> features.

    Attributes: `backbone` (ResNet or EqResNet), `num_features`, `group_order` (|G|, 1 for a
    ResNet), `in_channels`, `image_size` (the training image size, or None if unknown) and
    `config` (the exported JSON as a dict).
    """

    def __init__(
        self,
        backbone: nn.Module,
        mean: torch.Tensor,
        std: torch.Tensor,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).clone())
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).clone())
        self.config = dict(config or {})
        self.num_features = int(backbone.num_features)
        self.group_order = int(getattr(backbone, "group_order", 1))
        self.in_channels = int(self.mean.numel())
        size = self.config.get("image_size")
        self.image_size = int(size) if size else None

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Checked, normalised float32 input for the backbone, on the encoder's device."""
        if not isinstance(images, torch.Tensor):
            raise ImageShapeError(
                f"images must be a torch tensor (N, C, H, W), got {type(images).__name__}"
            )
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ImageShapeError(
                f"this encoder takes {self.in_channels}-channel images of shape "
                f"(N, {self.in_channels}, H, W), got shape {tuple(images.shape)}"
            )
        images = images.to(self.mean.device)
        if images.dtype == torch.uint8:
            x = to_float(images)  # x * float32(1/255), as training and `equissl eval` do
        elif images.is_floating_point():
            x = images.to(self.mean.dtype)
            low, high = (float(v) for v in torch.aminmax(x)) if x.numel() else (0.0, 0.0)
            if low < -RANGE_SLACK or high > 1 + RANGE_SLACK:  # one host sync per call
                raise ImageShapeError(
                    f"float images must be in [0, 1]; these span [{low:.3g}, {high:.3g}]: "
                    "divide 0-255 values by 255, or pass uint8"
                )
        else:
            raise ImageShapeError(
                f"images must be float in [0, 1] or uint8 in [0, 255], got {images.dtype}"
            )
        return normalize(x, self.mean, self.std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, features): the representation every evaluation reads (group-invariant for an
        EqResNet)."""
        return self.backbone(self.prepare(images))

    def orientation_features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, features, |G|): pooled over space but not over the group (|G| = 1 for a ResNet);
        rotating the input permutes the last axis of an EqResNet's."""
        return self.backbone.orientation_features(self.prepare(images))


# ---------------------------------------------------------------------------------------------
# Loading


def json_path_of(weights: str | Path) -> Path:
    """`backbone.safetensors` -> `backbone.json`, the description written beside it."""
    return Path(weights).with_suffix(".json")


def _bad_json(source: str | Path, why: str) -> BackboneFileError:
    return BackboneFileError(
        f"malformed backbone description {source}: {why}; re-run equissl export"
    )


def check_description(info: Any, source: str | Path) -> dict[str, Any]:
    """`info` (the parsed description from `source`), checked for what `load_backbone` needs."""
    if not isinstance(info, dict):
        raise _bad_json(source, "expected a JSON object")
    version = info.get("format_version")
    if not isinstance(version, int):
        raise _bad_json(source, "no integer format_version")
    if version > FORMAT_VERSION:
        raise BackboneFileError(
            f"{source} has format_version {version}, newer than this equissl reads "
            f"({FORMAT_VERSION}); upgrade equissl"
        )
    arch = info.get("backbone")
    if not isinstance(arch, dict):
        raise _bad_json(source, "no 'backbone' object")
    missing = [k for k in BACKBONE_KEYS if k not in arch]
    if missing:
        raise _bad_json(source, f"'backbone' lacks {', '.join(missing)}")
    for key in ("width", "fields", "in_channels"):
        if not isinstance(arch[key], int) or isinstance(arch[key], bool):
            raise _bad_json(source, f"backbone.{key} must be an integer, got {arch[key]!r}")
    for key in ("mean", "std"):
        values = info.get(key)
        if (
            not isinstance(values, list)
            or len(values) != arch["in_channels"]
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
        ):
            raise _bad_json(
                source,
                f"'{key}' must list one number per input channel ({arch['in_channels']}), "
                f"got {values!r}",
            )
    if any(v <= 0 for v in info["std"]):
        raise _bad_json(source, "'std' values must be positive")
    return info


def read_description(path: str | Path) -> dict[str, Any]:
    """The exported JSON file, checked for what `load_backbone` needs."""
    path = Path(path)
    if not path.is_file():
        raise BackboneFileError(
            f"backbone description {path} not found; equissl export writes it beside the "
            ".safetensors file: keep the two together"
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad_json(path, _one_line(exc)) from None
    return check_description(info, path)


def _read_weights(weights: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors on the CPU, string metadata) of a .safetensors file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            names = f.keys()  # a list: safe_open is not iterable
            state = {k: f.get_tensor(k) for k in names}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise BackboneFileError(
            f"cannot read backbone weights {weights} ({_one_line(exc)}); re-run equissl export"
        ) from None
    return state, metadata


def _description_of(weights: Path, metadata: dict[str, str]) -> tuple[dict[str, Any], str]:
    """(checked description, where it came from): the weights' own metadata, or for exports
    that predate it the .json beside them."""
    if METADATA_KEY not in metadata:
        source = json_path_of(weights)
        return read_description(source), str(source)
    source = f"{weights} (metadata '{METADATA_KEY}')"
    try:
        info = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise _bad_json(source, _one_line(exc)) from None
    return check_description(info, source), source


def _mismatch(
    weights: Path, source: str, state: dict[str, torch.Tensor], model: nn.Module
) -> str | None:
    """How the file's tensors differ from the model's state dict (None when they match)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if not (missing or unexpected or shapes):
        return None
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} keys ({', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)} keys ({', '.join(unexpected[:3])})")
    if shapes:
        parts.append(f"wrong shapes (file vs model: {'; '.join(shapes[:3])})")
    return f"weights {weights} do not match the architecture in {source}: " + ", ".join(parts)


def load_backbone(path: str | Path, device: str | torch.device = "cpu") -> Encoder:
    """The encoder exported by `equissl export` (the .safetensors path), on `device`, in eval
    mode. Its description comes from the weights file's own metadata; exports that predate it
    are described by the .json beside them."""
    weights = Path(path)
    if weights.suffix == ".json":  # the description was given: its weights lie beside it
        weights = weights.with_suffix(".safetensors")
    if not weights.is_file():
        raise BackboneFileError(f"backbone file not found: {weights}")
    state, metadata = _read_weights(weights)
    info, source = _description_of(weights, metadata)
    arch = info["backbone"]
    try:
        backbone = build_backbone(
            str(arch["name"]),
            stem=str(arch["stem"]),
            width=arch["width"],
            in_channels=arch["in_channels"],
            group=str(arch["group"]),
            fields=arch["fields"],
            downsample=str(arch.get("downsample", "avg")),
            dropout=float(arch.get("dropout", 0.0)),
            pool=str(arch.get("pool", "mean")),
            image_size=int(info.get("image_size") or 32),
        )
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise _bad_json(source, _one_line(exc)) from None
    problem = _mismatch(weights, source, state, backbone)
    if problem:
        raise BackboneFileError(problem)
    bad = nonfinite_names(state)
    if bad:
        raise BackboneFileError(
            f"backbone weights {weights} hold non-finite values ({describe_nonfinite(bad)}); "
            "they cannot be used: export again from a checkpoint with finite weights"
        )
    backbone.load_state_dict(state, strict=True)
    mean = torch.tensor(info["mean"], dtype=torch.float32)
    std = torch.tensor(info["std"], dtype=torch.float32)
    return Encoder(backbone, mean, std, info).to(device).eval()


# ---------------------------------------------------------------------------------------------
# Export


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


def read_checkpoint(ckpt: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(saved configuration, model state) of an `equissl pretrain` checkpoint; the configuration
    comes from the checkpoint, or from config.yaml beside it for checkpoints that predate its
    `equissl_config` entry."""
    path = Path(ckpt)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds on a bad file
        raise CheckpointError(
            f"cannot read checkpoint {path}: {_one_line(exc)}; is it truncated?"
        ) from None
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
    if cfg.data.size > 0:
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
    from equissl.runner import backbone_label, method_label

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
            "fields": int(b.fields),
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
        "view_size": int(cfg.augment.size) or image_size,
        "checkpoint": str(ckpt.resolve()),
        "run_name": str(cfg.name),
        "method": method_label(cfg),
        "data": str(cfg.data.name),
        "equissl_version": _version(),
    }


def _config_of(saved: dict[str, Any], ckpt: Path):
    from omegaconf import OmegaConf

    from equissl.config import schema

    try:
        return OmegaConf.merge(schema(), OmegaConf.create(saved))
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


def export_backbone(ckpt: str | Path, out: str | Path) -> tuple[Path, Path]:
    """Write the backbone of an `equissl pretrain` checkpoint to `out` (.safetensors, its
    description in its metadata) and the description to `out` with suffix .json (see
    `write_export`). Returns (weights, json) paths."""
    from safetensors.torch import save

    out = check_destination(out)
    ckpt = Path(ckpt)
    saved, full = read_checkpoint(ckpt)
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
        backbone = build_backbone(
            cfg.backbone.name,
            stem=cfg.backbone.stem,
            width=cfg.backbone.width,
            in_channels=cfg.data.channels,
            group=cfg.backbone.group,
            fields=cfg.backbone.fields,
            downsample=cfg.backbone.downsample,
            dropout=cfg.backbone.dropout,
            pool=cfg.backbone.pool,
            image_size=training_image_size(cfg) or 32,
        )
        backbone.load_state_dict(state, strict=True)
    except (ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"checkpoint {ckpt} does not match its own configuration: {_one_line(exc, 300)}"
        ) from None
    tensors = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    info = describe(cfg, backbone, mean, std, ckpt, out)
    metadata = {"format": FORMAT, "version": str(FORMAT_VERSION), METADATA_KEY: json.dumps(info)}
    weights_bytes = save(tensors, metadata=metadata)
    text = (json.dumps(info, indent=2) + "\n").encode("utf-8")
    description = json_path_of(out)
    try:
        write_export(out, weights_bytes, description, text)
    except OSError as exc:
        why = exc.strerror or _one_line(exc)
        raise ExportError(f"cannot write {out} and {description.name}: {why}") from None
    return out, description
