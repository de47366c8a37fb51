"""Tiny ImageFolders of random JPEGs, written by the tests that need image files of their own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def image_folder(
    root: Path, classes: int = 3, per_class: int = 10, seed: int = 0, size=(20, 24)
) -> Path:
    """<root>/c<k>/<i>.jpg: `classes` x `per_class` random JPEGs of size (h + i mod 3, w)."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = root / f"c{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            shape = (size[0] + i % 3, size[1], 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / f"{i}.jpg")
    return root
