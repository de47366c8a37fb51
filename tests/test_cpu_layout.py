"""channels_last on the CPU (`trainer.channels_last`): where it applies, that it keeps a step's
numerics, and that the narrow backbones it must avoid (a oneDNN heap corruption in the backward
of 1x1 stride-2 convs with under 16 input channels) stay contiguous and train."""

import subprocess
import sys
import textwrap

import torch

from equissl.app.bench import other_layout
from equissl.app.config import build_config
from equissl.app.train import channels_last_pays, prepare_method
from equissl.methods import build_method
from equissl.models import build_backbone
from equissl.step import step_generator

CPU = torch.device("cpu")


def test_channels_last_applies_to_plain_resnets_from_width_16_on_the_cpu():
    assert channels_last_pays(build_backbone("resnet18", width=16, stem="cifar"), CPU)
    assert channels_last_pays(build_backbone("resnet50", width=16, stem="imagenet"), CPU)
    # strided 1x1 shortcuts with 8 (ResNet-18 w8) or 4 inputs: the oneDNN bug, contiguous
    assert not channels_last_pays(build_backbone("resnet18", width=8, stem="cifar"), CPU)
    assert not channels_last_pays(build_backbone("resnet18", width=4, stem="imagenet"), CPU)
    # an EqResNet's 5-D free filters: contiguous on the CPU; every backbone on a GPU
    eq = build_backbone("eqresnet18", width=8, stem="cifar", group="c4")
    assert not channels_last_pays(eq, CPU)
    assert channels_last_pays(eq, torch.device("cuda"))


def _method(layout: bool):
    cfg = build_config(
        ["esimclr"],
        ["backbone.width=16", "optim.batch_size=8", "trainer.accelerator=cpu",
         f"trainer.channels_last={str(layout).lower()}"],
    )  # fmt: skip
    torch.manual_seed(0)
    mean, std = torch.full((3,), 0.5), torch.full((3,), 0.25)
    method = build_method(cfg, in_channels=3, image_size=32, num_classes=10, mean=mean, std=std)
    prepare_method(method, cfg, CPU)
    return method


def test_a_channels_last_step_has_the_contiguous_steps_loss():
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(8) % 10
    losses = []
    for layout in (False, True):
        method = _method(layout)
        assert method.channels_last is layout
        conv = next(m for m in method.backbone.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) is layout
        losses.append(method.loss(images, labels, step_generator(0, 0))[0].detach())
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)


def _backbone_grads(layout: torch.memory_format, dtype: torch.dtype) -> list[torch.Tensor]:
    torch.manual_seed(0)
    plain = build_backbone("resnet18", width=16, stem="cifar").to(dtype)
    net, _ = other_layout(plain, channels_last=layout == torch.channels_last)
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    w = torch.randn(16, net.num_features, generator=torch.Generator().manual_seed(2))
    out = net(x.to(dtype).contiguous(memory_format=layout))
    ((out * w.to(dtype)).sum() ** 2).backward()
    return [p.grad.double() for p in net.parameters()]


def test_channels_last_gradients_hold_to_float64_within_tf32s_order():
    # oneDNN's channels_last kernels round differently, and a train-mode BatchNorm ResNet
    # amplifies float32 rounding: against float64 the contiguous gradients here err by ~1e-6 of
    # their norm, the channels_last ones by ~5e-3 (TF32 convolutions on a GPU, PyTorch's default
    # there, err by ~1e-3). A wrong layout would err by O(1).
    exact = _backbone_grads(torch.contiguous_format, torch.float64)

    def error(layout: torch.memory_format) -> float:
        got = _backbone_grads(layout, torch.float32)
        return max(float((g - e).norm() / e.norm()) for g, e in zip(got, exact, strict=True))

    assert error(torch.contiguous_format) < 1e-3
    assert error(torch.channels_last) < 3e-2


def test_a_narrow_backbone_trains_at_64_px_with_channels_last_asked_for():
    # In its own process: with channels_last this backward corrupts the heap (exit -11 / -6).
    code = textwrap.dedent(
        """
        import torch
        from equissl.app.config import build_config
        from equissl.app.train import prepare_method
        from equissl.methods import build_method
        from equissl.step import step_generator
        cfg = build_config(["simclr"], ["backbone.width=8", "trainer.channels_last=true"])
        method = build_method(cfg, in_channels=3, image_size=64, num_classes=10,
                              mean=torch.full((3,), 0.5), std=torch.full((3,), 0.25))
        prepare_method(method, cfg, torch.device("cpu"))
        assert not method.channels_last
        images = torch.randint(0, 256, (16, 3, 64, 64), dtype=torch.uint8)
        for step in range(2):
            loss, _ = method.loss(images, torch.zeros(16, dtype=torch.long),
                                  step_generator(0, step))
            loss.backward()
        print("trained")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "trained"


def test_bench_times_no_channels_last_pass_of_a_narrow_backbone():
    # Its bare pass in the other layout went channels_last around the guard and crashed (-11).
    argv = ["-m", "equissl", "bench", "simclr", "smoke", "backbone.width=8", "size=64",
            "steps=1", "warmup=0", "trainer.accelerator=cpu"]  # fmt: skip
    out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| contiguous |" in out.stdout
