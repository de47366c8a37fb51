"""EqResNets are exactly equivariant: for every group element g and every layer type,
f(g x) = g . f(x) to 1e-5 (relative), in training and eval mode, at odd and even sizes; the
invariant output does not move, the orientation features are permuted, and the layers equal
the group-convolution formula written naively here."""

import pytest
import torch
import torch.nn.functional as F

from equissl.models import build_backbone
from equissl.models.eqresnet import EqBasicBlock
from equissl.models.gconv import (
    GroupBatchNorm,
    GroupConv2d,
    symmetric_conv2d,
    symmetric_max_pool,
)
from equissl.models.groups import get_group

GROUPS = ["c4", "d4"]
SIZES = [8, 9, 16, 15]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


def _check_equivariant(layer, group, x, image_input: bool) -> None:
    y = layer(x)
    for g in range(group.order):
        gx = group.act(x, g) if image_input else group.transform_fields(x, g)
        assert _rel(layer(gx), group.transform_fields(y, g)) < 1e-5, g


@pytest.mark.parametrize("name", GROUPS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("stride", [1, 2])
def test_every_layer_type_is_equivariant(name, size, stride):
    torch.manual_seed(0)
    group = get_group(name)
    n = group.order
    image = torch.randn(2, 3, size, size)
    fields = torch.randn(2, 5 * n, size, size)
    lift = GroupConv2d(group, 3, 4, 3, stride=stride, padding=1, lifting=True, bias=True)
    _check_equivariant(lift, group, image, image_input=True)
    for k, pad in ((3, 1), (1, 0), (5, 2)):
        conv = GroupConv2d(group, 5, 3, k, stride=stride, padding=pad, bias=True)
        _check_equivariant(conv, group, fields, image_input=False)
    block = EqBasicBlock(group, 5, 6, stride)
    norm = GroupBatchNorm(group, 5)
    with torch.no_grad():  # non-trivial running statistics and affine parameters
        norm.bn.running_mean.uniform_(-1, 1), norm.bn.running_var.uniform_(0.5, 2)
        norm.bn.weight.uniform_(0.5, 2), norm.bn.bias.uniform_(-1, 1)
    for train in (True, False):
        block.train(train), norm.train(train)
        _check_equivariant(block, group, fields, image_input=False)
        _check_equivariant(norm, group, fields, image_input=False)
    _check_equivariant(symmetric_max_pool, group, fields, image_input=False)


@pytest.mark.parametrize("name", GROUPS)
@pytest.mark.parametrize(
    "stem,sizes", [("cifar", [32, 16, 33, 28, 15]), ("imagenet", [64, 56, 45])]
)
def test_invariant_output_and_orientation_features(name, stem, sizes):
    torch.manual_seed(0)
    group = get_group(name)
    net = build_backbone("eqresnet18", group=name, stem=stem, width=6)
    for train in (True, False):
        net.train(train)
        for size in sizes:
            x = torch.randn(3, 3, size, size)
            h, o = net(x), net.orientation_features(x)
            assert h.shape == (3, net.num_features)
            assert o.shape == (3, net.num_features, group.order)
            assert _rel(o.mean(-1), h) < 1e-6
            for g in range(1, group.order):
                assert _rel(net(group.act(x, g)), h) < 1e-5, (size, g)
                moved = net.orientation_features(group.act(x, g))
                assert _rel(moved, group.transform_fields(o, g)) < 1e-5, (size, g)
            # not trivially invariant: the orientation axis carries information
            assert float(o.std(-1).mean()) > 1e-3 * float(o.abs().mean())


def test_c4_net_is_not_mirror_invariant():
    torch.manual_seed(0)
    net = build_backbone("eqresnet18", group="c4", width=4).eval()
    x = torch.randn(2, 3, 16, 16)
    assert _rel(net(x.flip(-1)), net(x)) > 1e-3


def _naive_group_conv(group, x, weight, lifting):
    """out[co, g] = sum_{ci, s} corr(x[ci, s], T_g W[co, ci, g^-1 s]) written out (stride 1)."""
    n = group.order
    b, _, h, w = x.shape
    co, ci = weight.shape[:2]
    k = weight.shape[-1]
    outs = []
    for c in range(co):
        for g in range(n):
            if lifting:
                filt = group.act(weight[c, :, 0], g)[None]
                outs.append(F.conv2d(x, filt, padding=k // 2))
                continue
            src = group.table[group.inverse[g]]  # s -> g^-1 s
            filt = torch.stack([group.act(weight[c, :, int(src[s])], g) for s in range(n)], 1)
            outs.append(F.conv2d(x, filt.reshape(1, ci * n, k, k), padding=k // 2))
    return torch.cat(outs, 1)


@pytest.mark.parametrize("name", GROUPS)
@pytest.mark.parametrize("lifting", [True, False])
def test_group_convolution_matches_the_formula(name, lifting):
    torch.manual_seed(1)
    group = get_group(name)
    cin = 3 if lifting else 2
    conv = GroupConv2d(group, cin, 3, 3, padding=1, lifting=lifting).double()
    x = torch.randn(2, cin * (1 if lifting else group.order), 7, 7, dtype=torch.double)
    expected = _naive_group_conv(group, x, conv.weight, lifting)
    assert _rel(conv(x), expected) < 1e-12


@pytest.mark.parametrize("size", [8, 9])
def test_stride_two_is_subsampling_or_pooled_subsampling(size):
    # odd sizes: every other pixel of the stride-1 output; even: its 2x2 average pooling
    torch.manual_seed(2)
    x, w = torch.randn(2, 3, size, size, dtype=torch.double), torch.randn(4, 3, 3, 3).double()
    full = F.conv2d(x, w, padding=1)
    expected = F.avg_pool2d(full, 2) if size % 2 == 0 else full[..., ::2, ::2]
    assert _rel(symmetric_conv2d(x, w, 2, 1), expected) < 1e-12


def test_field_batch_norm_shares_statistics_across_orientations():
    group = get_group("c4")
    norm = GroupBatchNorm(group, 3).train()
    x = torch.randn(8, 12, 5, 5) * 3 + 2
    y = norm(x).view(8, 3, 4, 5, 5)
    assert torch.allclose(y.mean((0, 2, 3, 4)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.var((0, 2, 3, 4), unbiased=False), torch.ones(3), atol=1e-3)
    assert not torch.allclose(y.mean((0, 3, 4)), torch.zeros(3, 4), atol=1e-2)  # per field


@pytest.mark.parametrize("name,tolerance", [("c4", 0.01), ("d4", 0.05)])
def test_default_width_matches_resnet18_parameters(name, tolerance):
    def count(net):
        return sum(p.numel() for p in net.parameters())

    plain = count(build_backbone("resnet18", width=64))
    eq = build_backbone("eqresnet18", group=name, width=64)
    assert abs(count(eq) - plain) / plain < tolerance
    assert eq.num_features == {"c4": 256, "d4": 184}[name]
    assert build_backbone("eqresnet34", group="c4", width=8).num_features == 32  # 4 fields x 8
    assert build_backbone("eqresnet18", group="c4", fields=3).num_features == 24


def test_unknown_backbone_or_group():
    with pytest.raises(ValueError, match="unknown group 'c8'"):
        build_backbone("eqresnet18", group="c8")
    with pytest.raises(ValueError, match="eqresnet18"):
        build_backbone("eqresnet50")


def test_channels_last_keeps_the_output_and_its_invariance():
    # the GPU path converts 4-D filters only; EqResNet's 5-D free filters stay as they are
    from equissl.app.train import to_channels_last

    torch.manual_seed(3)
    net = build_backbone("eqresnet18", group="d4", width=4).eval()
    x = torch.randn(2, 3, 16, 16)
    plain = net(x)
    to_channels_last(net)
    fast = net(x.contiguous(memory_format=torch.channels_last))
    turned = net(torch.rot90(x, 1, (-2, -1)).contiguous(memory_format=torch.channels_last))
    assert _rel(fast, plain) < 1e-5 and _rel(turned, plain) < 1e-5


# Wang et al.'s variant. Their model/resnet.py is stored only as a .pyc at kaotty/Understanding-ESSL
# 6b8e2d5 ("Equivariant Network/model/__pycache__/resnet.cpython-311.pyc"); the reference below
# is written from issue 16's reading of it and from the group layers it builds on (C_4_3x3 /
# C_4_1x1.forward: conv2d at stride 1, then nn.MaxPool2d(2, 2) when stride != 1; C4Basic: conv,
# Dropout, BN, ReLU, conv, BN; C4ResNet: 32 fields, then 64, 128, 256).


def _official_stride2(x: torch.Tensor, filters: torch.Tensor, padding: int) -> torch.Tensor:
    """C_4_3x3 / C_4_1x1 with stride 2: the stride-1 convolution, then 2x2 max pooling."""
    return F.max_pool2d(F.conv2d(x, filters, padding=padding, stride=1), kernel_size=2, stride=2)


@pytest.mark.parametrize("kernel,padding", [(3, 1), (1, 0)])
def test_max_downsampling_is_the_official_conv_then_max_pool(kernel, padding):
    torch.manual_seed(0)
    group = get_group("c4")
    layer = GroupConv2d(group, 3, 2, kernel, stride=2, padding=padding, downsample="max").double()
    x = torch.randn(2, 12, 8, 8, dtype=torch.float64)
    want = _official_stride2(x, layer.filters(), padding)
    torch.testing.assert_close(layer(x), want, atol=1e-12, rtol=0)
    _check_equivariant(layer, group, x, image_input=False)  # exact on even sizes
    # mutation check: equissl's averaged stride-2 filter (downsample=avg) is another layer
    layer.downsample = "avg"
    assert _rel(layer(x), want) > 1e-2


def test_wang_variant_reads_4096_group_max_pooled_features():
    """C4 EqResNet-18 at width 64 (32 fields, 256 in the last stage) on 32x32 images: stride 2
    by max pooling leaves 4x4 maps; max over the 4 orientations, no spatial pooling: 256 x 16 =
    4,096 features, which a rotation of the input moves in space (not invariant)."""
    net = build_backbone(
        "eqresnet18", group="c4", width=64, downsample="max", dropout=0.2, pool="group_max"
    )
    assert net.num_features == 4096 and net.group_order == 1
    blocks = [b for stage in net.stages for b in stage]
    assert len(blocks) == 8 and all(b.dropout.p == 0.2 for b in blocks)
    strided = [m for m in net.modules() if isinstance(m, GroupConv2d) and m.stride == 2]
    assert len(strided) == 6 and all(m.downsample == "max" for m in strided)
    small = (
        build_backbone(
            "eqresnet18",
            group="c4",
            width=8,
            downsample="max",
            dropout=0.2,
            pool="group_max",
            image_size=16,
        )
        .double()
        .eval()
    )
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    maps = small.feature_maps(x)  # (2, 32 fields x 4 orientations, 2, 2)
    want = maps.view(2, 32, 4, 2, 2).amax(2).flatten(1)  # the group max-pool, then flatten
    torch.testing.assert_close(small(x), want, atol=0, rtol=0)
    assert small(x).shape == (2, small.num_features) == (2, 128)
    rotated = small(torch.rot90(x, 1, (-2, -1))).view(2, 32, 2, 2)
    torch.testing.assert_close(rotated, torch.rot90(want.view(2, 32, 2, 2), 1, (-2, -1)))
    assert _rel(rotated.flatten(1), want) > 1e-3  # moved: not invariant
    # mutation check: equissl's invariant design pools space and group (32 features, invariant)
    plain = build_backbone("eqresnet18", group="c4", width=8).double().eval()
    assert plain.num_features == 32
    torch.testing.assert_close(plain(torch.rot90(x, 1, (-2, -1))), plain(x))


def test_dropout_follows_the_first_convolution_of_each_block():
    torch.manual_seed(0)
    block = EqBasicBlock(get_group("c4"), 2, 2, 1, dropout=0.5)
    seen = []
    block.dropout.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    x = torch.randn(2, 8, 6, 6)
    block(x)
    torch.testing.assert_close(seen[0], block.conv1(x))
    assert isinstance(EqBasicBlock(get_group("c4"), 2, 2, 1).dropout, torch.nn.Identity)
