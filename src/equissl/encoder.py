"""The trained encoder on its own: load an exported backbone back, extract features.

`equissl export ckpt=runs/<name>/last.ckpt out=backbone.safetensors` (equissl.app.export)
writes two files:

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
from pathlib import Path
from typing import Any

import torch
from torch import nn

from equissl.augment.stats import normalize, to_float
from equissl.errors import DataError, UserError
from equissl.eval.features import extract_features  # noqa: F401 - equissl.extract_features
from equissl.finite import describe_nonfinite, nonfinite_names
from equissl.models import build_backbone

FORMAT = "equissl-backbone"
FORMAT_VERSION = 1
# The weights file's metadata key holding the description (the .json's content) as JSON text.
METADATA_KEY = "equissl"
BACKBONE_KEYS = ("name", "stem", "width", "group", "fields", "in_channels")


RANGE_SLACK = 1e-3  # float images may overshoot [0, 1] by rounding (resampling, colour maths)


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
        if key == "fields" and arch[key] is None:  # null: width / sqrt|G| (files before: 0)
            continue
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
    """The encoder exported by `equissl export` (the .safetensors path, or a hub folder), on
    `device`, in eval mode. Its description comes from the weights file's own metadata; exports that predate it
    are described by the .json beside them."""
    weights = Path(path)
    if weights.is_dir():  # a hub folder (`equissl export format=hub`)
        weights = weights / "model.safetensors"
    elif weights.suffix == ".json":  # the description was given: its weights lie beside it
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
