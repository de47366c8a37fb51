import pytest
import torch

from equissl.models import build_backbone, transformation_head


@pytest.mark.parametrize(
    "name,stem,width,size,features",
    [
        ("resnet18", "cifar", 8, 32, 64),
        ("resnet34", "cifar", 4, 16, 32),
        ("resnet50", "cifar", 4, 16, 128),
        ("resnet18", "imagenet", 8, 64, 64),
    ],
)
def test_backbone_output_shapes(name, stem, width, size, features):
    net = build_backbone(name, stem=stem, width=width)
    assert net.num_features == features
    out = net(torch.randn(2, 3, size, size))
    assert out.shape == (2, features)


def test_resnet18_full_width_has_the_standard_parameter_count():
    net = build_backbone("resnet18", stem="imagenet", width=64)
    # torchvision's resnet18 without its 512x1000 classifier: 11,176,512 parameters
    assert sum(p.numel() for p in net.parameters()) == 11_176_512


def test_cifar_stem_keeps_resolution_and_imagenet_stem_reduces_it():
    cifar = build_backbone("resnet18", stem="cifar", width=4)
    imnet = build_backbone("resnet18", stem="imagenet", width=4)
    x = torch.randn(1, 3, 32, 32)
    assert cifar.stem(x).shape[-1] == 32
    assert imnet.stem(x).shape[-1] == 8


def test_one_channel_input_and_head_shape():
    net = build_backbone("resnet18", width=4, in_channels=1)
    h = net(torch.randn(3, 1, 16, 16))
    head = transformation_head(h.shape[1], 16, 4)
    assert head(h).shape == (3, 4)


@pytest.mark.parametrize("name, last_bn", [("resnet18", "bn2"), ("resnet50", "bn3")])
def test_zero_init_residual_makes_every_block_start_as_its_shortcut(name, last_bn):
    """torchvision's `zero_init_residual=True` (E-SSL's ImageNet ResNet-50): the last BN weight
    of every residual block is 0, so at initialisation (eval-mode BN) block(x) equals
    relu(shortcut(x)); without the option (the previous behaviour) it does not."""
    from equissl.models.resnet import BasicBlock, Bottleneck, ResNet

    torch.manual_seed(0)
    net = ResNet(name, width=8, zero_init_residual=True).eval()
    plain = ResNet(name, width=8).eval()
    blocks = [m for m in net.modules() if isinstance(m, BasicBlock | Bottleneck)]
    assert len(blocks) == (8 if name == "resnet18" else 16)
    for block in blocks:
        assert torch.count_nonzero(getattr(block, last_bn).weight) == 0
    block = blocks[1]  # identity shortcut
    x = torch.randn(2, block.conv1.in_channels, 6, 6, dtype=torch.float64)
    block.double()
    assert torch.equal(block(x), torch.relu(x))
    other = [m for m in plain.modules() if isinstance(m, BasicBlock | Bottleneck)][1].double()
    assert not torch.allclose(other(x), torch.relu(x))  # mutation check
