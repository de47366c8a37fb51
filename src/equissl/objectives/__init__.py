"""Losses: pure functions of tensors."""

from equissl.objectives.barlow_twins import barlow_twins_loss
from equissl.objectives.care import (
    care_loss,
    infonce_uniformity,
    paired_uniformity,
    uniformity_loss,
)
from equissl.objectives.cosine import byol_loss, negative_cosine, simsiam_loss
from equissl.objectives.info_nce import info_nce
from equissl.objectives.moco import moco_logits, moco_loss
from equissl.objectives.ntxent import nt_xent
from equissl.objectives.predict import prediction_loss
from equissl.objectives.vicreg import vicreg_loss

__all__ = [
    "barlow_twins_loss",
    "byol_loss",
    "care_loss",
    "info_nce",
    "infonce_uniformity",
    "moco_logits",
    "moco_loss",
    "negative_cosine",
    "nt_xent",
    "paired_uniformity",
    "prediction_loss",
    "simsiam_loss",
    "uniformity_loss",
    "vicreg_loss",
]
