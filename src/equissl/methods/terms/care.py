"""CARE: transformations act as orthogonal maps of the embedding sphere (Gupta et al.).

The batch is split into chunks; every image of a chunk gets the same pair of transformations
(t1, t2), and the Gram matrices of the embeddings of the t1 copies and of the t2 copies are
matched within each chunk: equal Gram matrices make t2 t1^-1 an orthogonal map.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from equissl.augment import Augment
from equissl.chunks import chunk_count, chunk_ids
from equissl.objectives import care_loss
from equissl.transforms import Transformation

Metrics = dict[str, Tensor]


class Care(nn.Module):
    """Views: two copies of each image, one pair of elements of `transformation` per block of
    `draws` (`chunks`: one per chunk; 1: one for the batch), or with no transformation a whole
    draw of `augment` each (the base augmentation is the transformation). Loss: Gram matching
    over `chunks`, plus `uniformity` x `spread(z1, z2)`, a non-collapse term that never pushes
    an image's two copies apart. It embeds with `projector`, its own (saved as `projector`)
    unless `shared` (the invariance branch's, as in the official code: referenced, not
    registered, so checkpoints keep one copy)."""

    representation = True  # reads the pooled representation its projector embeds

    def __init__(
        self,
        name: str,
        weight: float,
        *,
        augment: Augment,
        transformation: Transformation | None,
        projector: nn.Module,
        shared: bool = False,
        chunks: int = 16,
        draws: int = 16,
        uniformity: float = 0.0,
        spread: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.name, self.weight, self.chunks, self.draws = name, weight, chunks, draws
        self.augment, self.transformation = augment, transformation
        self.projector = None if shared else projector
        self.__dict__["embed"] = projector  # not a submodule: no second copy of shared weights
        self.uniformity, self.spread = uniformity, spread

    def views(self, images: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """2N views (the two copies, stacked) and the (2, N) element labels (empty for the
        base augmentation, drawn whole per block)."""
        t = self.transformation
        if t is None:
            views = [self.augment(images, generator, chunks=self.draws) for _ in range(2)]
            return torch.cat(views), images.new_zeros(0, dtype=torch.long)
        x = self.augment(images, generator)
        n = x.shape[0]
        ids = chunk_ids(n, self.draws, x.device)
        a, b = (t.sample(chunk_count(n, self.draws), generator, x.device)[ids] for _ in range(2))
        pair = [t.apply_drawn(x, a, generator), t.apply_drawn(x, b, generator)]
        return torch.cat(pair), torch.stack([a, b])

    def loss(self, h: Tensor, targets: Tensor) -> tuple[Tensor, Metrics]:
        z1, z2 = self.embed(h).chunk(2)
        loss = care_loss(z1, z2, self.chunks)
        metrics = {f"{self.name}_loss": loss.detach()}
        if self.uniformity:
            spread = self.spread(z1, z2)
            loss = loss + self.uniformity * spread
            metrics[f"{self.name}_uniformity"] = spread.detach()
        return loss, metrics
