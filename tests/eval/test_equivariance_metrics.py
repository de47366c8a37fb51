import pytest
import torch
from torch import nn

from equissl.errors import UserError
from equissl.eval import equivariance_metrics, linear_probe
from equissl.eval.equivariance import invariance_score, mlp_probe

MEAN = torch.tensor([0.5, 0.4, 0.3])
STD = torch.tensor([0.2, 0.25, 0.3])


def random_images(n: int, seed: int, size: int = 8) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8)


def cornered_images(n: int, seed: int, size: int = 8) -> torch.Tensor:
    """A bright top-left block on a dark ground plus noise: its corner gives the rotation away."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.full((3, size, size), 50.0)
    base[:, :3, :3] = 200.0
    noise = torch.randint(-45, 46, (n, 3, size, size), generator=gen).float()
    return (base + noise).clamp(0, 255).to(torch.uint8)


class RotationSummed(nn.Module):
    """Conv features summed over the four rotations of the input: exactly rotation invariant."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten())

    def forward(self, x):
        return sum(self.net(torch.rot90(x, k, dims=(2, 3))) for k in range(4))


class Recorder(nn.Module):
    """Flattens its input; keeps every batch and whether it ran in train mode or with gradient."""

    def __init__(self):
        super().__init__()
        self.batches: list[torch.Tensor] = []
        self.modes: list[bool] = []

    def forward(self, x):
        self.batches.append(x.clone())
        self.modes.append(self.training or torch.is_grad_enabled())
        return x.flatten(1)


FAST = dict(mean=MEAN, std=STD, batch_size=128, mlp_epochs=30)


@pytest.mark.parametrize(
    "encoder", [nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), RotationSummed()]
)
def test_rotation_invariant_encoder(encoder):
    train, test = random_images(300, seed=0), random_images(300, seed=1)
    out = equivariance_metrics(encoder, train, test, ["rotation"], **FAST)
    assert set(out) == {"rotation_linear_acc", "rotation_mlp_acc", "rotation_invariance"}
    assert out["rotation_invariance"] == pytest.approx(1.0, abs=1e-5)
    assert out["rotation_linear_acc"] <= 40.0  # chance is 25%
    assert out["rotation_mlp_acc"] <= 40.0


def test_raw_pixels_see_the_rotation():
    train, test = cornered_images(300, seed=0), cornered_images(200, seed=1)
    out = equivariance_metrics(nn.Flatten(), train, test, ["rotation"], **FAST)
    assert out["rotation_linear_acc"] > 90.0
    assert out["rotation_mlp_acc"] > 90.0
    assert out["rotation_invariance"] < 0.99


def test_invariance_score_matches_reference():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, 7, generator=gen), torch.randn(50, 7, generator=gen)
    reference = ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).mean().item()
    assert invariance_score(a, b) == pytest.approx(reference, abs=1e-6)
    assert invariance_score(a, 3 * a) == pytest.approx(1.0, abs=1e-12)
    assert invariance_score(a, -a) == pytest.approx(-1.0, abs=1e-12)
    # (N, C, H, W) features are flattened per row
    assert invariance_score(a.view(50, 7, 1, 1), b.view(50, 7, 1, 1)) == invariance_score(a, b)
    with pytest.raises(UserError):
        invariance_score(a, b[:, :6])


def test_reproducible_with_the_same_seed():
    train, test = cornered_images(120, seed=2), cornered_images(80, seed=3)
    kwargs = dict(FAST, mlp_epochs=5)
    first = equivariance_metrics(nn.Flatten(), train, test, ["rotation"], **kwargs)
    second = equivariance_metrics(nn.Flatten(), train, test, ["rotation"], **kwargs)
    assert first == second


def test_limit_batches_and_pipeline():
    train, test = random_images(50, seed=4), random_images(40, seed=5)
    limit, batch_size = 16, 5
    recorder = Recorder().train()
    kwargs = dict(mean=MEAN, std=STD, batch_size=batch_size, limit=limit, mlp_epochs=2)
    equivariance_metrics(recorder, train, test, ["rotation"], **kwargs)
    assert not any(recorder.modes)  # eval mode, no gradient while encoding
    assert recorder.training  # the mode comes back
    assert max(b.shape[0] for b in recorder.batches) <= batch_size
    seen = torch.cat(recorder.batches)
    # untransformed test, then per name: train, test and test moved by a non-identity element
    assert seen.shape[0] == 4 * limit
    plain, train_seen, test_seen, moved = seen.split(limit)

    def normalised(images):
        return (images.float() / 255 - MEAN.view(3, 1, 1)) / STD.view(3, 1, 1)

    def rotations(x, ks):
        return torch.stack([torch.rot90(x, k, dims=(2, 3)) for k in ks], 1)  # (N, len(ks), ...)

    def matches(images, candidates):  # (N, M): images[i] equals candidates[j] (up to rounding)
        diff = (images.flatten(1).unsqueeze(1) - candidates.flatten(1).unsqueeze(0)).abs()
        return diff.amax(2).lt(1e-4)

    def close_to_one_of(images, candidates):  # candidates (N, M, C, H, W), one row per image
        diff = (images.unsqueeze(1) - candidates).flatten(2).abs().amax(2)
        return diff.lt(1e-4).any(1)

    # the untransformed pass holds `limit` distinct test images, normalised after to_float
    found = matches(plain, normalised(test))
    assert found.sum(1).eq(1).all() and found.any(0).sum() == limit

    assert close_to_one_of(test_seen, rotations(plain, range(4))).all()
    assert close_to_one_of(moved, rotations(plain, range(1, 4))).all()
    assert not close_to_one_of(moved, plain.unsqueeze(1)).any()
    # train images come from the train split
    found = matches(train_seen, rotations(normalised(train), range(4)).flatten(0, 1))
    assert found.any(1).all()

    # a different seed picks other images; more than the split holds takes them all
    other = Recorder()
    equivariance_metrics(other, train, test, ["rotation"], **dict(kwargs, seed=1))
    assert not torch.equal(torch.cat(other.batches)[:limit], plain)
    everything = Recorder()
    equivariance_metrics(everything, train, test, ["rotation"], **dict(kwargs, limit=1000))
    assert sum(b.shape[0] for b in everything.batches) == 40 + 50 + 40 + 40


def test_mlp_probe_learns_a_nonlinear_rule():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1500, 4, generator=gen)  # two informative dims, two of noise
    y = (x[:, 0] * x[:, 1] > 0).long()  # XOR of signs: no linear rule beats ~50%
    split = dict(num_classes=2, seed=0)
    acc = mlp_probe(x[:1000], y[:1000], x[1000:], y[1000:], epochs=100, **split)
    assert acc > 85.0
    assert acc == mlp_probe(x[:1000], y[:1000], x[1000:], y[1000:], epochs=100, **split)
    assert linear_probe(x[:1000], y[:1000], x[1000:], y[1000:], **split)["acc_mean"] < 65.0


def test_rejects_bad_inputs():
    imgs = random_images(10, seed=0)
    with pytest.raises(UserError):
        equivariance_metrics(nn.Flatten(), imgs.float(), imgs, ["rotation"], mean=MEAN, std=STD)
    with pytest.raises(UserError):
        equivariance_metrics(nn.Flatten(), imgs, imgs[:, :2], ["rotation"], mean=MEAN, std=STD)
    with pytest.raises(UserError):
        equivariance_metrics(nn.Flatten(), imgs, imgs, ["rotation"], mean=MEAN[:2], std=STD)
    with pytest.raises(UserError):
        equivariance_metrics(nn.Flatten(), imgs, imgs, ["rotation", "rotation"], mean=MEAN, std=STD)
    with pytest.raises(UserError):
        equivariance_metrics(nn.Flatten(), imgs, imgs, ["rotation"], mean=MEAN, std=STD, limit=0)
