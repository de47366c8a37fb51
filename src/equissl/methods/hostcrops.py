"""Crops cut on the host (streaming): each augmentation call of a method reads its own uint8 crop.

A streamed step arrives as one crop per augmentation call of the method, cut by the data workers
at the source resolution (equissl.data.stream). `use_host_crops` wraps every augmentation of the
method in a `HostCropped`, which takes its next crop from what `feed` handed it and runs the
rest of its pipeline (flip, colour, blur, ...) on it, with the crop step reduced to the identity
(the whole crop, scale and ratio 1: an exact copy). The resident path never sees these wrappers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor

from equissl.augment import Augment
from equissl.augment.crop import CropSpec


class HostCropped:
    """`augment` on crops cut elsewhere: each call reads the next of the crops `feed` gave it
    (ignoring the images it is called with); `calls` crops a step (CARE's two copies: 2)."""

    def __init__(self, augment: Augment, calls: int = 1) -> None:
        self.original, self.calls = augment, calls
        self.whole = replace(augment, scale=(1.0, 1.0), ratio=(1.0, 1.0))
        self.queue: list[Tensor] = []

    def __getattr__(self, name: str):  # size, jitter, ...: the original pipeline's settings
        if name.startswith("__") or name in ("original", "whole", "queue", "calls"):
            raise AttributeError(name)  # not set yet (copy, pickle)
        return getattr(self.original, name)

    def spec(self) -> CropSpec:
        a = self.original
        return CropSpec(a.size, tuple(a.scale), tuple(a.ratio), a.interpolation)

    def feed(self, crops: Sequence[Tensor]) -> None:
        self.queue = list(crops)

    def __call__(self, images: Tensor, generator: torch.Generator, **kwargs):
        if not self.queue:
            raise RuntimeError("a host-cropped augmentation was called without a crop")
        return self.whole(self.queue.pop(0), generator, **kwargs)


class HostCropLoss:
    """`method.loss` on the crops of a streamed step: wraps the method's augmentations once
    (`use_host_crops`); `specs` are the crops a sample needs, in the order a call takes them."""

    def __init__(self, method) -> None:
        self.method, self.wrapped = method, use_host_crops(method)
        self.specs = host_crop_specs(self.wrapped)

    def __call__(
        self, crops: Sequence[Tensor], labels: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, dict[str, Tensor]]:
        feed_host_crops(self.wrapped, crops)
        return self.method.loss(crops[0], labels, generator)  # (its size and device)


def use_host_crops(method) -> list[HostCropped]:
    """Wrap every augmentation of `method` (invariance views, then each term's) in a
    HostCropped, in the order `feed_host_crops` hands out crops; returns the wrappers."""
    wrapped: list[HostCropped] = []
    if method.views is not None:
        method.views.augments = [HostCropped(a) for a in method.views.augments]
        wrapped += method.views.augments
    for term in method.terms:
        if getattr(term, "shared", None) is not None and getattr(term, "augment", None) is None:
            raise ValueError(
                f"term {term.name} regresses the invariance views' crop parameters, which "
                "streaming cuts on the host; it cannot stream"
            )
        augment = getattr(term, "augment", None)
        if augment is None:
            continue
        # CARE on the base augmentation and Regress draw two copies a step, the others one.
        two = getattr(term, "transformation", 0) is None or hasattr(term, "parts")
        term.augment = HostCropped(augment, calls=2 if two else 1)
        wrapped.append(term.augment)
    return wrapped


def host_crop_specs(wrapped: Sequence[HostCropped]) -> list[CropSpec]:
    """The crops a streamed sample needs, in order: one per call of each wrapper."""
    return [w.spec() for w in wrapped for _ in range(w.calls)]


def feed_host_crops(wrapped: Sequence[HostCropped], crops: Sequence[Tensor]) -> None:
    """Hand each wrapper its crops of this step (crops in `host_crop_specs` order)."""
    if len(crops) != sum(w.calls for w in wrapped):
        raise ValueError(f"{len(crops)} crops for {sum(w.calls for w in wrapped)} calls")
    position = 0
    for w in wrapped:
        w.feed(crops[position : position + w.calls])
        position += w.calls
