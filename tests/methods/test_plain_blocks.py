"""The blocks take plain arguments: E-SimCLR and CARE composed by hand, with no configuration,
are the methods `build_method` makes from their presets (same weights, same loss)."""

import torch

from equissl.app.config import build_config
from equissl.augment import build_augment
from equissl.methods import Method, build_method
from equissl.methods.classifier import OnlineClassifier
from equissl.methods.invariance import SimCLR
from equissl.methods.terms import Care, LabelHeads, Predict
from equissl.methods.views import InvarianceViews
from equissl.models import build_backbone, projector, transformation_head
from equissl.transforms import get_transformation

SIZE, ONES = 16, torch.ones(3)


def _by_hand(term: str) -> Method:
    """The presets' recipes at width 4 on 16 x 16 images, in the order they draw weights."""
    torch.manual_seed(0)
    backbone = build_backbone("resnet18", width=4, image_size=SIZE)
    d = backbone.num_features
    simclr = SimCLR(projector(d, 4 * d, 4 * d), temperature=0.5, cross_view=term == "predict")
    views = InvarianceViews([build_augment("simclr", SIZE) for _ in range(2)])
    if term == "predict":  # E-SimCLR: four rotations of half-size crops, lambda 0.4
        rotation = get_transformation("rotation", SIZE // 2, 3)
        heads = LabelHeads([transformation_head(d, 4 * d, 4)], rotation)
        crops = build_augment("simclr", SIZE // 2)
        terms = [Predict("rotation", 0.4, augment=crops, transformation=rotation, heads=heads)]
    else:  # CARE: one pair of SimCLR augmentations per batch, 16 chunks, SimCLR's projector
        terms = [
            Care(
                "augment_care",
                0.9,
                augment=build_augment("simclr", SIZE),
                transformation=None,
                projector=simclr.projector,
                shared=True,
                chunks=16,
                draws=1,
            )
        ]
    classifier = OnlineClassifier(d, 10)
    separate = term == "predict"
    return Method(backbone, simclr, views, terms, classifier, mean=0 * ONES, std=ONES, separate_views=separate)  # fmt: skip


def _built(preset: str) -> Method:
    torch.manual_seed(0)
    cfg = build_config([preset], ["backbone.width=4"])
    return build_method(cfg, in_channels=3, image_size=SIZE, num_classes=10, mean=0 * ONES, std=ONES)  # fmt: skip


def test_esimclr_and_care_by_hand_are_the_built_methods():
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (32, 3, SIZE, SIZE), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (32,), generator=g)
    for preset, term in (("esimclr", "predict"), ("care", "care")):
        hand, built = _by_hand(term), _built(preset)
        assert hand.state_dict().keys() == built.state_dict().keys()
        assert all(torch.equal(v, built.state_dict()[k]) for k, v in hand.state_dict().items())
        a, metrics = hand.loss(images, labels, torch.Generator().manual_seed(2))
        b, expected = built.loss(images, labels, torch.Generator().manual_seed(2))
        assert torch.equal(a, b) and metrics.keys() == expected.keys()
