import math

import pytest
import torch

import equissl.eval.geometry as geometry
from equissl.errors import UserError
from equissl.eval import geometry_metrics, hue_sensitivity
from equissl.eval.geometry import (
    element_order,
    equivariance_error,
    fit_linear_map,
    orthogonality_error,
    power_error,
)
from equissl.transforms import get_transformation


def orthogonal(d: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    return q


def gaussian(n: int, d: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def random_images(n: int, seed: int = 0, size: int = 8, channels: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, size, size), generator=gen, dtype=torch.uint8)


def quarter_turns(blocks: int) -> torch.Tensor:
    """Block-diagonal of 2-D 90-degree rotations: order exactly 4, and its square is -I."""
    turn = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)
    return torch.block_diag(*[turn] * blocks)


def test_fit_recovers_orthogonal_map():
    q = orthogonal(16)
    x = gaussian(200, 16)
    y = x @ q.T
    a = fit_linear_map(x, y)
    assert a.dtype == torch.float64 and a.shape == (16, 16)
    torch.testing.assert_close(a, q, rtol=0, atol=1e-10)
    assert orthogonality_error(a) < 1e-8
    assert equivariance_error(x, y, a) < 1e-10


@pytest.mark.parametrize(
    "m",
    [torch.diag(torch.linspace(1, 3, 16, dtype=torch.float64)), gaussian(16, 16, seed=2)],
    ids=["diag", "gaussian"],
)
def test_non_orthogonal_map_is_fitted_but_not_orthogonal(m):
    x = gaussian(200, 16)
    y = x @ m.T
    a = fit_linear_map(x, y)
    assert equivariance_error(x, y, a) < 1e-10
    assert orthogonality_error(a) > 0.3


def test_fit_rectangular_and_minimum_norm():
    x = gaussian(50, 4)
    x[:, 3] = 0  # rank deficient: the minimum-norm solution ignores the dead input
    m = gaussian(6, 4, seed=3)
    a = fit_linear_map(x.float(), (x @ m.T).float())
    assert a.shape == (6, 4) and a.dtype == torch.float64
    torch.testing.assert_close(a[:, :3], m[:, :3], rtol=0, atol=1e-5)
    assert a[:, 3].abs().max() < 1e-6


def test_fit_errors():
    with pytest.raises(UserError, match="same N"):
        fit_linear_map(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(UserError):
        fit_linear_map(torch.zeros(0, 2), torch.zeros(0, 2))
    with pytest.raises(UserError, match="square"):
        orthogonality_error(torch.zeros(2, 3))


def test_errors_known_values():
    x = gaussian(10, 4)
    # y = 2x fitted by A = I: residual x, relative error ||x|| / ||2x|| = 1/2
    assert equivariance_error(x, 2 * x, torch.eye(4)) == pytest.approx(0.5, abs=1e-12)
    # A = 2I: A^T A - I = 3I, norm 3 sqrt(d) / sqrt(d) = 3
    assert orthogonality_error(2 * torch.eye(4)) == pytest.approx(3.0, abs=1e-12)


def test_power_error_of_quarter_turns():
    q = quarter_turns(4)
    assert orthogonality_error(q) < 1e-12
    assert power_error(q, 4) < 1e-12
    assert power_error(q, 2) == pytest.approx(2.0, abs=1e-12)  # Q^2 = -I
    assert power_error(q, 2) > 0.5


@pytest.mark.parametrize(
    ("name", "order"),
    [
        ("rotation", 4),
        ("hflip", 2),
        ("vflip", 2),
        ("invert", 2),
        ("rotflip", 4),
        ("grayscale", None),
        ("blur", None),
        ("rotation+hflip", 2),
    ],
)
def test_element_order(name, order):
    # rotflip label 1 is the 90-degree rotation (labels 0-3 rotations); "rotation+hflip"
    # label 1 is (no rotation, flip) in the mixed radix.
    assert element_order(get_transformation(name, 8, 3), 1, size=8, channels=3) == order


def test_element_order_of_other_labels():
    rotflip = get_transformation("rotflip", 8, 3)
    assert element_order(rotflip, 2, size=8) == 2  # 180 degrees
    assert element_order(rotflip, 5, size=8) == 2  # a reflection
    assert element_order(rotflip, 0, size=8) == 1
    with pytest.raises(UserError):
        element_order(rotflip, 8, size=8)


def pixels(v):
    return v.flatten(1)


def test_pixel_encoder_is_exactly_orthogonal():
    images = random_images(600)  # fit half: 300 images > 192 dimensions
    out = geometry_metrics({"emb": pixels}, images, ["rotation", "hflip", "grayscale"])
    assert set(out) == {
        "emb_rotation_equiv_err", "emb_rotation_orth_err", "emb_rotation_pow4_err",
        "emb_rotation_inv_cos", "emb_hflip_equiv_err", "emb_hflip_orth_err",
        "emb_hflip_pow2_err", "emb_hflip_inv_cos", "emb_grayscale_equiv_err",
        "emb_grayscale_orth_err", "emb_grayscale_inv_cos", "emb_rotation_procrustes_err",
        "emb_hflip_procrustes_err", "emb_grayscale_procrustes_err",
        "emb_rotation_procrustes_pow4_err", "emb_hflip_procrustes_pow2_err",
    }  # fmt: skip
    assert out["emb_rotation_procrustes_pow4_err"] < 1e-6
    for name in ("rotation", "hflip"):
        assert out[f"emb_{name}_equiv_err"] < 1e-6
        assert out[f"emb_{name}_orth_err"] < 1e-6
    assert out["emb_rotation_pow4_err"] < 1e-6
    assert out["emb_hflip_pow2_err"] < 1e-6
    # grayscale is linear on pixels (a projection, not orthogonal)
    assert out["emb_grayscale_equiv_err"] < 1e-5
    assert out["emb_grayscale_orth_err"] > 0.3
    # uniform pixels: cos(x, gx) ~ E[x]^2 / E[x^2] = 3/4, not invariant
    assert 0.6 < out["emb_rotation_inv_cos"] < 0.9


def test_invariant_and_nonlinear_encoders():
    images = random_images(600, seed=1)
    encoders = {
        "emb": lambda v: v.mean((2, 3)),  # channel means: rotation invariant, A = I
        "feat": lambda v: v[:, :, :4, :].flatten(1),  # top half: the rotated top half is not
    }
    out = geometry_metrics(encoders, images, ["rotation"], batch_size=128, limit=500)
    assert out["emb_rotation_inv_cos"] == pytest.approx(1.0, abs=1e-6)
    assert out["emb_rotation_equiv_err"] < 1e-5
    assert out["emb_rotation_orth_err"] < 1e-5
    assert out["emb_rotation_pow4_err"] < 1e-5
    assert out["feat_rotation_equiv_err"] > 0.1
    assert out["feat_rotation_inv_cos"] < 0.95


def test_geometry_metrics_batches_limit_and_no_grad():
    seen = []

    def encode(v):
        seen.append((v.shape[0], torch.is_grad_enabled(), v.dtype, float(v.max())))
        return v.flatten(1)

    geometry_metrics({"emb": encode}, random_images(50), ["hflip"], batch_size=16, limit=40)
    assert [s[0] for s in seen] == [16, 16, 8] * 2  # plain pass, then the transformed pass
    assert not any(s[1] for s in seen)
    assert all(s[2] == torch.float32 and s[3] <= 1.0 for s in seen)


def test_geometry_metrics_errors():
    with pytest.raises(UserError):
        geometry_metrics({"emb": pixels}, random_images(10).float(), ["rotation"])
    with pytest.raises(UserError, match="square"):
        geometry_metrics({"emb": pixels}, random_images(10)[..., :6], ["rotation"])
    with pytest.raises(UserError, match="repeat"):
        geometry_metrics({"emb": pixels}, random_images(10), ["rotation", "rotation"])
    with pytest.raises(UserError, match="at least 2"):
        geometry_metrics({"emb": pixels}, random_images(1), ["rotation"])


def colourful_images(n: int, seed: int = 0) -> torch.Tensor:
    return random_images(n, seed=seed)


def test_hue_sensitivity_pixels_and_value():
    encoders = {"emb": pixels, "feat": lambda v: v.amax(1).flatten(1)}  # HSV value: hue-invariant
    degrees = [0, 45, 90, 180]
    out = hue_sensitivity(encoders, colourful_images(200), degrees, batch_size=64)
    assert set(out) == {"degrees", "emb", "feat"}
    assert out["degrees"] == [0.0, 45.0, 90.0, 180.0]
    assert len(out["emb"]) == len(out["feat"]) == 4
    assert out["emb"][0] == pytest.approx(1.0, abs=1e-5)
    assert out["emb"][3] < 0.9
    assert out["emb"][1] > out["emb"][2] > out["emb"][3]
    for value in out["feat"]:
        assert value == pytest.approx(1.0, abs=1e-4)


def test_hue_sensitivity_limit_default_degrees_and_errors():
    out = hue_sensitivity({"emb": pixels}, colourful_images(20), limit=5)
    assert out["degrees"] == [float(d) for d in range(0, 181, 15)]
    assert all(math.isfinite(v) for v in out["emb"])
    with pytest.raises(UserError, match="3 channels"):
        hue_sensitivity({"emb": pixels}, random_images(4, channels=1))
    with pytest.raises(UserError):
        hue_sensitivity({"emb": pixels}, colourful_images(4), [270])
    with pytest.raises(UserError):
        hue_sensitivity({}, colourful_images(4))


def test_procrustes_recovers_an_orthogonal_map_and_is_worse_than_least_squares_otherwise():
    gen = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(12, 12, generator=gen, dtype=torch.float64))
    x = torch.randn(300, 12, generator=gen, dtype=torch.float64)
    found = geometry.procrustes_map(x, x @ q.T)
    assert torch.allclose(found, q, atol=1e-10)
    scale = torch.diag(torch.linspace(1, 3, 12, dtype=torch.float64))
    y = x @ scale.T
    a = geometry.fit_linear_map(x, y)
    assert geometry.equivariance_error(x, y, a) < 1e-10
    assert geometry.equivariance_error(x, y, geometry.procrustes_map(x, y)) > 0.2


def test_warnings_for_meaningless_fits_and_grey_hue(capsys):
    """A map of 192 features fitted on 50 images is underdetermined, and grey images are hue
    invariant by construction: each says so in one warning line, and a sound call says nothing."""
    geometry_metrics({"emb": pixels}, random_images(100), ["hflip"])
    assert "underdetermined" in capsys.readouterr().err
    geometry_metrics({"emb": pixels}, random_images(400), ["hflip"])
    assert capsys.readouterr().err == ""
    grey = random_images(20, channels=1).repeat(1, 3, 1, 1)
    curves = hue_sensitivity({"emb": pixels}, grey, [0, 90])
    assert curves["emb"] == pytest.approx([1.0, 1.0]) and "grayscale" in capsys.readouterr().err
    hue_sensitivity({"emb": pixels}, colourful_images(20), [0, 90])
    assert capsys.readouterr().err == ""
