"""First-release checkpoints (projector on the method, `head` per term) load into today's Method."""

import pytest
import torch

from equissl.app.config import build_config
from equissl.app.runner import upgrade_state
from equissl.methods import build_method


@pytest.mark.parametrize("preset", ["esimclr", "simclr", "pretext"])
def test_first_release_keys_are_renamed_to_todays_layout(preset):
    cfg = build_config([preset], ["backbone.width=4"])
    ones = torch.ones(3)
    method = build_method(cfg, in_channels=3, image_size=12, num_classes=4, mean=ones, std=ones)
    state = method.state_dict()
    legacy = {
        k.replace("invariance.projector.", "projector.").replace(".heads.0.", ".head."): v
        for k, v in state.items()
    }
    assert legacy.keys() != state.keys()  # each preset has a projector or a head to rename
    assert upgrade_state(legacy).keys() == state.keys()
    assert upgrade_state(state).keys() == state.keys()  # today's keys pass through
