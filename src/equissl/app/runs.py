"""A run's files: the run folder, the labels its tables use, and the one reader of checkpoints.

`read_checkpoint` is the only place equissl opens a `.ckpt` (a Lightning checkpoint written by
`equissl pretrain`): resuming a run, `equissl eval` and `equissl export` all read through it, so a
missing or unreadable file gives the same one line wherever it is read.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from equissl.errors import UserError
from equissl.reports.atomic import write_text_atomic

UNREADABLE = "cannot read checkpoint {path}: {why}; is it truncated?"


class CheckpointError(UserError):
    """The checkpoint is missing, unreadable or not written by `equissl pretrain`."""


def _one_line(exc: BaseException, limit: int = 200) -> str:
    return " ".join(str(exc).split())[:limit]


def read_checkpoint(ckpt: str | Path, *entries: str, unreadable: str = UNREADABLE) -> Any:
    """The checkpoint at `ckpt` as `torch.load` gives it (Lightning's dict), on the CPU.

    A missing file is "checkpoint not found: PATH"; a file torch cannot read, or one without
    every name in `entries`, is `unreadable` with {path} and {why} (the cause, on one line)
    filled in. Both raise CheckpointError (a UserError: one line, exit status 2)."""
    path = Path(ckpt)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=False)
        for entry in entries:
            loaded[entry]  # noqa: B018 - a file without it is as unreadable as a truncated one
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds on a bad file
        raise CheckpointError(unreadable.format(path=path, why=_one_line(exc))) from None
    return loaded


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def run_dir_of(cfg: DictConfig) -> Path:
    return Path(cfg.out_dir) / cfg.name


def backbone_label(cfg: DictConfig) -> str:
    """e.g. resnet18-w16, eqresnet18-c4-w16 (an EqResNet with `fields` set: -f8)."""
    b = cfg.backbone
    if not b.name.startswith("eq"):
        return f"{b.name}-w{b.width}"
    return f"{b.name}-{b.group}-" + (f"f{b.fields}" if b.fields else f"w{b.width}")


def method_label(cfg: DictConfig) -> str:
    if cfg.optim.epochs == 0 or cfg.backbone.frozen:
        return "random-init"
    terms = "+".join(
        f"{t.transform}:{t.mode if t.role == 'equivariance' else 'invariant'}"
        for t in cfg.method.equivariance
        if t.role != "none"
    )
    label = f"{cfg.method.invariance}{'+' + terms if terms else ''}"
    if cfg.method.classifier != "detached":
        label += f"/{cfg.method.classifier}{cfg.method.class_weight:g}"
    return label


# Checkpoints of the first release (SimCLR's projector on the method, one `head` per term)
# under today's names: (anchored pattern, replacement).
LEGACY_KEYS = (
    (re.compile(r"^projector\."), "invariance.projector."),
    (re.compile(r"^terms\.(\d+)\.head\."), r"terms.\1.heads.0."),
)


def upgrade_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the keys of a first-release checkpoint so it loads into today's `Method`; today's
    keys match neither pattern and pass through."""
    upgraded = {}
    for key, value in state.items():
        for pattern, new in LEGACY_KEYS:
            key = pattern.sub(new, key)
        upgraded[key] = value
    return upgraded
