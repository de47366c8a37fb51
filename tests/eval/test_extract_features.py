import pytest
import torch
import torch.nn.functional as F
from torch import nn

from equissl.errors import UserError
from equissl.eval import extract_features


def tiny_encoder() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.Dropout(0.5),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def images(n: int = 10, size: int = 8) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8)


MEAN = torch.tensor([0.5, 0.4, 0.3])
STD = torch.tensor([0.2, 0.25, 0.3])


def manual(encoder: nn.Module, imgs: torch.Tensor, size: int = 0) -> torch.Tensor:
    x = imgs.float() / 255
    if size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    encoder.eval()
    with torch.no_grad():
        return encoder((x - MEAN[:, None, None]) / STD[:, None, None])


def test_matches_manual_computation_in_batches():
    enc = tiny_encoder()
    enc[1].running_mean.uniform_(-1, 1)  # eval-mode BatchNorm must use these statistics
    imgs = images()
    feats = extract_features(enc, imgs, mean=MEAN, std=STD, batch_size=3)
    assert feats.dtype == torch.float32 and feats.shape == (10, 4) and feats.device.type == "cpu"
    torch.testing.assert_close(feats, manual(enc, imgs))


def test_resizes_only_when_asked():
    enc, imgs = tiny_encoder(), images(size=12)
    resized = extract_features(enc, imgs, mean=MEAN, std=STD, size=6)
    torch.testing.assert_close(resized, manual(enc, imgs, size=6))
    same = extract_features(enc, imgs, mean=MEAN, std=STD, size=12)
    torch.testing.assert_close(same, manual(enc, imgs))


@pytest.mark.parametrize("training", [True, False])
def test_restores_each_module_mode(training):
    enc = tiny_encoder().train(training)
    enc[2].train(not training)  # a mixed state must come back as it was
    before = [m.training for m in enc.modules()]
    extract_features(enc, images(4), mean=MEAN, std=STD)
    assert [m.training for m in enc.modules()] == before


def test_bad_inputs_raise_user_error():
    enc = tiny_encoder()
    with pytest.raises(UserError):
        extract_features(enc, images().float(), mean=MEAN, std=STD)
    with pytest.raises(UserError):
        extract_features(enc, images(), mean=MEAN[:2], std=STD)


def test_one_function_under_every_name():
    import equissl
    import equissl.encoder

    assert equissl.extract_features is extract_features
    assert equissl.encoder.extract_features is extract_features


def test_a_bare_backbone_needs_its_normalisation():
    enc = tiny_encoder()
    with pytest.raises(UserError, match="mean and std are required: Sequential"):
        extract_features(enc, images())
    with pytest.raises(UserError, match="give both mean and std"):
        extract_features(enc, images(), mean=MEAN)


def test_orientation_features_of_a_bare_backbone():
    class Oriented(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = tiny_encoder()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

        def orientation_features(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)[..., None]

    enc, imgs = Oriented(), images()
    feats = extract_features(enc, imgs, 4, mean=MEAN, std=STD, orientations=True)
    assert feats.shape == (10, 4, 1)
    torch.testing.assert_close(feats[..., 0], manual(enc.body, imgs))
