"""Checkpoints written before the restructuring of issue 17 (tests/fixtures/checkpoints-fb632c1:
`equissl pretrain esimclr|care smoke backbone.width=4 eval.at_end=false` at commit fb632c1)
still load into today's Method with every key in place (strict), and give the same backbone
features and projector embeddings on fixed images as the code that wrote them."""

from pathlib import Path

import pytest
import torch

from equissl.app.config import load_config_file
from equissl.app.runner import load_state_dict, upgrade_state
from equissl.augment import to_float
from equissl.eval.features import eval_mode
from equissl.methods import build_method

FIXTURES = Path(__file__).parent / "fixtures" / "checkpoints-fb632c1"


@pytest.mark.parametrize("name", ["esimclr", "care"])
def test_a_checkpoint_of_the_earlier_layout_loads_and_gives_the_same_features(name):
    folder = FIXTURES / name
    cfg = load_config_file(folder / "config.yaml")
    state = load_state_dict(folder / "last.ckpt")
    expected = torch.load(folder / "expected.pt")
    method_state = upgrade_state(
        {k.removeprefix("method."): v for k, v in state.items() if k.startswith("method.")}
    )
    ones = torch.ones(3)
    method = build_method(
        cfg, in_channels=3, image_size=16, num_classes=10, mean=0 * ones, std=ones
    )
    method.load_state_dict(method_state, strict=True)  # every key, nothing left over
    assert sorted(method.state_dict()) == sorted(method_state)
    with torch.no_grad(), eval_mode(method):
        mean, std = method.mean.view(1, -1, 1, 1), method.std.view(1, -1, 1, 1)
        features = method.backbone((to_float(expected["images"]) - mean) / std)
        embeddings = method.invariance.projector(features)
    # float32 kernels may round differently on another CPU: equal to float32 precision
    assert torch.allclose(features, expected["features"], rtol=1e-5, atol=1e-5)
    assert torch.allclose(embeddings, expected["embeddings"], rtol=1e-5, atol=1e-5)
