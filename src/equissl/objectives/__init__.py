"""Losses: pure functions of tensors."""

from equissl.objectives.ntxent import nt_xent
from equissl.objectives.predict import prediction_loss

__all__ = ["nt_xent", "prediction_loss"]
