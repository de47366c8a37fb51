"""Shape and label checks shared by the frozen-feature evaluations."""

from __future__ import annotations

import torch

from equissl.errors import UserError


def check_split(x: torch.Tensor, y: torch.Tensor, num_classes: int, split: str) -> None:
    """Raise UserError unless x is (N, D), y is (N,) integer labels in [0, num_classes)."""
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise UserError(
            f"{split} features must be (N, D) and labels (N,), got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[0] == 0:
        raise UserError(f"{split} split is empty")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise UserError(f"{split} labels must be integers, got {y.dtype}")
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise UserError(
            f"{split} labels must lie in [0, {num_classes}), got [{int(y.min())}, {int(y.max())}]"
        )


def check_splits(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
) -> None:
    """Check both splits and that their feature sizes agree."""
    if num_classes < 1:
        raise UserError(f"num_classes must be at least 1, got {num_classes}")
    check_split(train_x, train_y, num_classes, "train")
    check_split(test_x, test_y, num_classes, "test")
    if train_x.shape[1] != test_x.shape[1]:
        raise UserError(
            f"train and test feature sizes differ: {train_x.shape[1]} vs {test_x.shape[1]}"
        )
