"""mlp heads: layer structure and shapes for the SimSiam, BYOL, Barlow Twins and VICReg recipes."""

import pytest
import torch
from torch import nn

from equissl.models import mlp

RECIPES = {
    "simsiam_projector": dict(in_dim=512, hidden=2048, out_dim=2048, layers=3, last_bn=True),
    "simsiam_predictor": dict(in_dim=2048, hidden=512, out_dim=2048, layers=2),
    "byol_projector": dict(in_dim=512, hidden=4096, out_dim=256, layers=2),
    "byol_predictor": dict(in_dim=256, hidden=4096, out_dim=256, layers=2),
    "barlow_vicreg_projector": dict(in_dim=512, hidden=2048, out_dim=2048, layers=3),
}


def _structure(head: nn.Sequential) -> list[tuple]:
    out = []
    for m in head:
        if isinstance(m, nn.Linear):
            out.append(("linear", m.in_features, m.out_features, m.bias is not None))
        elif isinstance(m, nn.BatchNorm1d):
            out.append(("bn", m.num_features, m.affine))
        else:
            assert isinstance(m, nn.ReLU)
            out.append(("relu",))
    return out


def test_structure_three_layers_last_bn():
    head = mlp(8, 16, 4, layers=3, last_bn=True, last_bn_affine=False)
    assert _structure(head) == [
        ("linear", 8, 16, False),
        ("bn", 16, True),
        ("relu",),
        ("linear", 16, 16, False),
        ("bn", 16, True),
        ("relu",),
        ("linear", 16, 4, False),
        ("bn", 4, False),
    ]


def test_structure_two_layers_default_and_one_layer():
    assert _structure(mlp(8, 16, 4)) == [
        ("linear", 8, 16, False),
        ("bn", 16, True),
        ("relu",),
        ("linear", 16, 4, True),
    ]
    assert _structure(mlp(8, 16, 4, layers=1)) == [("linear", 8, 4, True)]
    with pytest.raises(ValueError):
        mlp(8, 16, 4, layers=0)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_shapes(name):
    cfg = RECIPES[name]
    head = mlp(**cfg)
    n_linear = sum(isinstance(m, nn.Linear) for m in head)
    assert n_linear == cfg["layers"]
    assert isinstance(head[-1], nn.BatchNorm1d) == cfg.get("last_bn", False)
    out = head(torch.randn(4, cfg["in_dim"]))
    assert out.shape == (4, cfg["out_dim"])


def test_last_bn_centres_output_in_train_mode():
    torch.manual_seed(0)
    head = mlp(16, 32, 8, layers=3, last_bn=True).train()
    out = head(torch.randn(20, 16) * 3 + 2)
    assert torch.allclose(out.mean(0), torch.zeros(8), atol=1e-5)
    assert not torch.allclose(
        mlp(16, 32, 8, layers=3).train()(torch.randn(20, 16) + 2).mean(0), torch.zeros(8), atol=1e-3
    )
