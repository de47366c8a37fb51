"""as_backbone: any module from images to features becomes a backbone (measured feature count,
orientation features with a group axis of 1); a library backbone passes through unchanged."""

import torch
from torch import nn

from equissl.models import ModuleBackbone, as_backbone, build_backbone


def test_a_plain_module_is_wrapped_with_its_measured_feature_count():
    net = nn.Sequential(nn.Conv2d(1, 5, 3), nn.BatchNorm2d(5), nn.AdaptiveAvgPool2d(2))
    net.train()
    backbone = as_backbone(net, in_channels=1, image_size=9)
    assert isinstance(backbone, ModuleBackbone) and backbone.num_features == 20
    assert net.training and net[1].num_batches_tracked == 0  # measured in eval mode, untouched
    x = torch.rand(3, 1, 9, 9)
    assert torch.equal(backbone(x), net(x).flatten(1))
    assert torch.equal(backbone.orientation_features(x), net(x).flatten(1).unsqueeze(-1))
    assert backbone.group_order == 1
    assert as_backbone(net, num_features=7).num_features == 7  # as told, not measured


def test_a_library_backbone_is_returned_as_it_is():
    resnet = build_backbone("resnet18", width=4)
    assert as_backbone(resnet) is resnet
