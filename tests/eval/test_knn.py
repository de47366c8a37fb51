import math

import pytest
import torch

from equissl.errors import UserError
from equissl.eval import knn_accuracy


def reference_predictions(train_x, train_y, test_x, num_classes, k, temperature):
    """Naive weighted kNN, one test point at a time, in plain Python."""
    train = [row / row.norm() for row in train_x]
    preds = []
    for query in test_x:
        query = query / query.norm()
        sims = sorted(
            ((float(query @ row), int(label)) for row, label in zip(train, train_y, strict=True)),
            reverse=True,
        )
        votes = [0.0] * num_classes
        for sim, label in sims[: min(k, len(train))]:
            votes[label] += math.exp(sim / temperature)
        preds.append(max(range(num_classes), key=lambda c: (votes[c], -c)))
    return torch.tensor(preds)


@pytest.mark.parametrize(
    ("k", "temperature", "chunk"), [(5, 0.1, 7), (20, 0.5, 1024), (500, 0.07, 16)]
)
def test_matches_naive_reference(k, temperature, chunk):
    gen = torch.Generator().manual_seed(k)
    centres = torch.randn(4, 8, generator=gen)
    train_y = torch.randint(0, 4, (60,), generator=gen)
    test_y = torch.randint(0, 4, (25,), generator=gen)
    train_x = centres[train_y] + torch.randn(60, 8, generator=gen)
    test_x = centres[test_y] + torch.randn(25, 8, generator=gen)
    expected = reference_predictions(train_x, train_y, test_x, 4, k, temperature)
    expected_acc = 100.0 * (expected == test_y).float().mean().item()
    acc = knn_accuracy(
        train_x, train_y, test_x, test_y, num_classes=4, k=k, temperature=temperature, chunk=chunk
    )
    assert acc == pytest.approx(expected_acc, abs=1e-9)
    assert 0.0 < acc < 100.0  # the example is neither trivial nor hopeless


def test_one_neighbour_on_train_set_is_perfect():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 6, generator=gen)
    y = torch.randint(0, 5, (50,), generator=gen)
    assert knn_accuracy(x, y, x, y, num_classes=5, k=1) == 100.0


def test_bad_inputs_raise_user_error():
    x, y = torch.randn(10, 3), torch.zeros(10, dtype=torch.long)
    with pytest.raises(UserError):
        knn_accuracy(x, y, x, y.float(), num_classes=2)
    with pytest.raises(UserError):
        knn_accuracy(x, y, x, y, num_classes=2, k=0)


def test_retrieval_queries_are_one_per_class():
    """The retrieval grid shows every class of a 10-class set once (it showed 8 queries)."""
    from equissl.eval.embedding import retrieval_queries

    labels = torch.arange(10).repeat_interleave(7)[
        torch.randperm(70, generator=torch.Generator().manual_seed(1))
    ]
    queries = retrieval_queries(labels, seed=3)
    assert labels[queries].tolist() == list(range(10))
    assert not torch.equal(queries, retrieval_queries(labels, seed=4))  # seeded draws
    assert labels[retrieval_queries(labels, max_rows=4)].tolist() == [0, 1, 2, 3]
