"""Held-out accuracy of a method's transformation-prediction heads."""

from __future__ import annotations

import torch
from torch import Tensor

from equissl.augment import resize_float, to_float
from equissl.eval.features import eval_mode
from equissl.methods.method import Method


@torch.no_grad()
def transformation_accuracy(
    method: Method, images: Tensor, batch_size: int = 512, limit: int | None = None
) -> dict[str, float]:
    """Accuracy (percent) of each term with a `predict` head on whole uint8 `images` (the first
    `limit`) resized to the term's size, every element of its transformation applied to each."""
    result: dict[str, float] = {}
    images = images[:limit]
    device = method.mean.device
    with eval_mode(method):
        for term in method.terms:
            if not hasattr(term, "predict"):
                continue
            k = term.transformation.num_labels
            chunk = max(batch_size // k, 1)
            hits = torch.zeros((), device=device)
            for start in range(0, images.shape[0], chunk):
                x = to_float(images[start : start + chunk].to(device))
                views, labels = term.transformation.expand(resize_float(x, term.size))
                hits += (term.predict(method.encode_for(term, views)) == labels).sum()
            result[f"{term.name}_acc"] = 100.0 * float(hits) / max(k * images.shape[0], 1)
    return result
