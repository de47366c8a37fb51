"""Weighted k-nearest-neighbour accuracy on frozen features (Wu et al., 2018, InstDisc)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from equissl.errors import UserError
from equissl.eval.validation import check_splits


@torch.no_grad()
def knn_predict(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    query_x: torch.Tensor,
    *,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk: int = 1024,
) -> torch.Tensor:
    """Predicted labels (M,) for `query_x`: top-k cosine neighbours vote with exp(sim / T)."""
    train = F.normalize(train_x.float(), dim=1)
    query = F.normalize(query_x.float().to(train.device), dim=1)
    labels = train_y.to(train.device, torch.long)
    k = min(k, train.shape[0])
    preds = []
    for start in range(0, query.shape[0], chunk):
        sims, idx = (query[start : start + chunk] @ train.T).topk(k, dim=1)
        votes = torch.zeros(sims.shape[0], num_classes, device=train.device)
        votes.scatter_add_(1, labels[idx], (sims / temperature).exp())
        preds.append(votes.argmax(1))
    return torch.cat(preds)


def knn_accuracy(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    *,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk: int = 1024,
) -> float:
    """Weighted kNN test accuracy in percent; k is clipped to the number of train points.

    Features are L2-normalised, each test point's k most cosine-similar train points vote for
    their class with weight exp(similarity / temperature), and the class with most weight wins
    (ties go to the lowest class index). Test points are processed `chunk` at a time to bound
    the (chunk, N_train) similarity matrix.
    """
    check_splits(train_x, train_y, test_x, test_y, num_classes)
    if k < 1 or chunk < 1 or temperature <= 0:
        raise UserError(
            f"need k >= 1, chunk >= 1 and temperature > 0, got {k}, {chunk}, {temperature}"
        )
    preds = knn_predict(
        train_x, train_y, test_x, num_classes=num_classes, k=k, temperature=temperature, chunk=chunk
    )
    return 100.0 * (preds.cpu() == test_y.cpu()).float().mean().item()
