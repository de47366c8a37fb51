"""2-D maps and nearest neighbours of frozen features, for looking at a representation."""

from __future__ import annotations

import importlib.util

import numpy as np
import torch
import torch.nn.functional as F


def tsne_coordinates(features: torch.Tensor, seed: int = 0) -> np.ndarray:
    """(N, 2) t-SNE map (scikit-learn; PCA initialisation, perplexity 30) of standardised
    features."""
    from sklearn.manifold import TSNE

    x = _standardised(features)
    perplexity = min(30.0, max(2.0, (x.shape[0] - 1) / 3))
    tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(x).astype(np.float32)


def umap_coordinates(features: torch.Tensor, seed: int = 0) -> np.ndarray | None:
    """(N, 2) UMAP map when the `umap-learn` package is installed, else None."""
    if importlib.util.find_spec("umap") is None:
        return None
    import umap

    return umap.UMAP(random_state=seed).fit_transform(_standardised(features)).astype(np.float32)


def _standardised(features: torch.Tensor) -> np.ndarray:
    x = features.double()
    x = (x - x.mean(0)) / x.std(0, correction=0).clamp_min(1e-6)
    return x.numpy()


def nearest_neighbours(query: torch.Tensor, gallery: torch.Tensor, k: int) -> torch.Tensor:
    """(Q, k) indices of each query's k most cosine-similar gallery features."""
    sim = F.normalize(query.float(), dim=1) @ F.normalize(gallery.float(), dim=1).T
    return sim.topk(min(k, gallery.shape[0]), dim=1).indices


def retrieval_queries(labels: torch.Tensor, seed: int = 0, max_rows: int = 20) -> torch.Tensor:
    """Indices of one seeded query per class present (the first `max_rows` classes by label),
    in label order, so that every class of a small set shows in the retrieval grid."""
    present = torch.unique(labels)[:max_rows]
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    shuffled = labels[order]
    first = [order[torch.nonzero(shuffled == c)[0, 0]] for c in present.tolist()]
    return torch.stack(first)
