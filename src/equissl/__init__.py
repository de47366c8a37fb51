"""equissl: equivariant self-supervised learning with PyTorch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from equissl.version import __version__

if TYPE_CHECKING:
    from equissl.encoder import Encoder

__all__ = ["Encoder", "__version__", "extract_features", "load_backbone"]


def load_backbone(path: Any, device: Any = "cpu") -> Encoder:
    """The encoder written by `equissl export` (a .safetensors file with its .json beside it),
    on `device`, in eval mode: float images in [0, 1] (or uint8) (N, C, H, W) -> (N, features).
    See equissl.encoder and docs/encoder.md."""
    from equissl.encoder import load_backbone as load

    return load(path, device=device)


def __getattr__(name: str) -> Any:
    # `import equissl` stays light: the encoder module (and torch) load on first use.
    if name == "Encoder":
        from equissl.encoder import Encoder

        return Encoder
    if name == "extract_features":
        from equissl.eval.features import extract_features

        return extract_features
    raise AttributeError(f"module 'equissl' has no attribute {name!r}")
