"""Non-finite weights: a model whose parameters or buffers hold NaN/inf is never saved as good,
reported as a success, evaluated or exported."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn


def nonfinite_names(tensors: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]]):
    """Names of the floating-point tensors that hold a NaN or an infinity (one host sync)."""
    items = list(tensors.items() if isinstance(tensors, Mapping) else tensors)
    floats = [(k, v) for k, v in items if isinstance(v, torch.Tensor) and v.is_floating_point()]
    if not floats:
        return []
    flags = torch.stack([~torch.isfinite(v.detach()).all() for _, v in floats]).cpu()
    return [k for (k, _), bad in zip(floats, flags.tolist(), strict=True) if bad]


def any_nonfinite(module: nn.Module) -> torch.Tensor:
    """A device bool: whether any floating parameter or buffer of `module` holds a NaN or an
    infinity (no host sync; the caller decides when to read it)."""
    tensors = [t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]
    if not tensors:
        return torch.zeros((), dtype=torch.bool)
    return torch.stack([~torch.isfinite(t.detach()).all() for t in tensors]).any()


def module_nonfinite(module: nn.Module) -> list[str]:
    """Names of the parameters and buffers of `module` that hold a NaN or an infinity."""
    return nonfinite_names([*module.named_parameters(), *module.named_buffers()])


def describe_nonfinite(names: list[str], limit: int = 3) -> str:
    """e.g. "backbone.bn1.running_var, ... (5 tensors)" for a one-line message."""
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} tensors)" if len(names) > limit else "")
