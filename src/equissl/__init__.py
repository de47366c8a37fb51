"""equissl: equivariant self-supervised learning with PyTorch."""

__version__ = "0.1.0"
