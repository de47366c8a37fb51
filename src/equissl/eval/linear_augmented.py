"""Linear probe trained on augmented views through the frozen encoder, every epoch.

The papers' own protocols, beside equissl's cached-feature probe (`eval.linear`): E-SSL's
CIFAR-10 probe (SGD lr 30, momentum 0.9, cosine to 0 per step, 100 epochs, batch 256, last
partial batch dropped, bicubic RandomResizedCrop + flip on every batch, test images Resize(36) +
CenterCrop(32), 5 seeds; rdangovs/essl `cifar10/main.py` `eval_loop`) and CARE's (Adam lr 1e-3,
weight decay 1e-6, constant, batch 512, SimCLR augmentation with blur, the encoder's BatchNorm in
training mode; Sharut/CARE `cifar10_cifar100_stl10/linear.py`). The encoder runs on every
training batch (epochs x N images per seed), so this is a GPU protocol; on the CPU use small
limits. Each step is batched on the device: augmentation, encoder and classifier, no host sync.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from equissl.augment import build_augment, normalize, to_float
from equissl.augment.crop import apply_matrices, crop_matrices, full_boxes
from equissl.errors import UserError
from equissl.eval.features import eval_mode
from equissl.eval.linear import init_heads
from equissl.eval.validation import check_splits
from equissl.optim import LARS

OPTIMIZERS = ("sgd", "adam", "lars")
LARS_TRUST = 0.001  # SimSiam's ImageNet probe: apex LARC(trust_coefficient=0.001, clip=False)
SCHEDULES = ("cosine", "constant", "multistep")
TRAIN_AUGMENTS = ("cropflip", "simclr", "none")
ENCODER_BN = ("eval", "train")


@dataclass(frozen=True)
class AugmentedProbe:
    """The recipe; defaults are E-SSL's CIFAR-10 linear evaluation."""

    optimizer: str = (
        "sgd"  # sgd (momentum) | adam | lars (SGD with trust ratio 0.001 on the weight)
    )
    lr: float = 30.0
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"  # per step, from lr to 0, no warm-up | constant | multistep
    milestones: tuple[int, ...] = ()  # multistep: epochs where the lr is multiplied by 0.1
    epochs: int = 100
    batch_size: int = 256
    seeds: int = 5
    drop_last: bool = True
    train_augment: str = "cropflip"  # the training views: crop+flip | SimCLR's | none
    size: int | None = None  # of the training views; None: test_crop, else the image size
    scale: tuple[float, float] = (0.08, 1.0)
    interpolation: str = "bicubic"  # of the training crops and the test resize
    blur_p: float = 0.0  # train_augment=simclr: blur probability (CARE's probe: 0.5)
    blur_kernel: int | None = None  # odd; None: 10% of the image size
    test_resize: int | None = 36  # shorter side of the test images before the centre crop
    test_crop: int | None = 32  # centre crop of the test images (None: no resize, no crop)
    encoder_bn: str = "eval"  # train: BatchNorm uses (and updates) batch statistics, as CARE

    def __post_init__(self) -> None:
        for value, allowed, what in (
            (self.optimizer, OPTIMIZERS, "optimizer"),
            (self.schedule, SCHEDULES, "schedule"),
            (self.train_augment, TRAIN_AUGMENTS, "train_augment"),
            (self.encoder_bn, ENCODER_BN, "encoder_bn"),
        ):
            if value not in allowed:
                raise UserError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")
        if min(self.epochs, self.batch_size, self.seeds) < 1 or self.lr <= 0:
            raise UserError("epochs, batch_size, seeds and lr must be positive")


def centre_view(x: Tensor, resize: int | None, crop: int | None, interpolation: str) -> Tensor:
    """torchvision's Resize(resize) (shorter side) then CenterCrop(crop), one resampling of a
    float (N, C, H, W) batch: the rows of the resize matrices that the crop keeps."""
    n, _, height, width = x.shape
    if resize:
        short = min(height, width)
        out_h, out_w = (
            (resize, int(resize * width / height))
            if height == short
            else (int(resize * height / width), resize)
        )
    else:
        out_h, out_w = height, width
    crop_h, crop_w = (crop, crop) if crop else (out_h, out_w)
    if crop_h > out_h or crop_w > out_w:
        raise UserError(f"test_crop {crop} is larger than the resized test images {out_h}x{out_w}")
    top, left = int(round((out_h - crop_h) / 2)), int(round((out_w - crop_w) / 2))
    boxes = full_boxes(n, height, width, x.device)
    wy, _ = crop_matrices(boxes, height, width, out_h, interpolation=interpolation)
    _, wx = crop_matrices(boxes, height, width, out_w, interpolation=interpolation)
    return apply_matrices(x, wy[:, top : top + crop_h], wx[:, left : left + crop_w])


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _frozen(encoder: nn.Module, bn: str):
    """The encoder in eval mode, or (bn=train) in training mode: BatchNorm on batch statistics."""
    if bn == "eval":
        return eval_mode(encoder)
    encoder.train()
    return contextlib.nullcontext(encoder)


@torch.no_grad()
def _features(encoder, views: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    with _autocast(views.device):
        return encoder(normalize(views, mean, std)).flatten(1).float()


def _test_accuracy(encoder, images, labels, head: nn.Linear, recipe, mean, std, batch) -> float:
    correct = torch.zeros((), dtype=torch.int64, device=head.weight.device)
    device = head.weight.device
    with eval_mode(encoder):
        for start in range(0, images.shape[0], batch):
            x = to_float(images[start : start + batch].to(device))
            x = centre_view(x, recipe.test_resize, recipe.test_crop, recipe.interpolation)
            logits = head(_features(encoder, x.clamp_(0, 1), mean, std))
            correct += (logits.argmax(1) == labels[start : start + batch].to(device)).sum()
    return 100.0 * float(correct) / images.shape[0]


def train_probe_head(
    encoder: nn.Module,
    images: Tensor,
    labels: Tensor,
    num_classes: int,
    recipe: AugmentedProbe,
    mean: Tensor,
    std: Tensor,
    seed: int,
    device: torch.device | str,
) -> nn.Linear:
    """One classifier (nn.Linear's init, from a generator seeded with `seed`) trained on fresh
    views of every batch of uint8 `images` on `device`; returns it."""
    gen = torch.Generator(device).manual_seed(seed)
    size = recipe.size or recipe.test_crop or images.shape[-1]
    augment = build_augment(
        recipe.train_augment,
        size,
        scale=recipe.scale,
        interpolation=recipe.interpolation,
        blur_p=recipe.blur_p,
        blur_kernel=recipe.blur_kernel,
    )
    with eval_mode(encoder):  # the feature size, without touching BatchNorm statistics
        dim = _features(encoder, to_float(images[:2].to(device)), mean, std).shape[1]
    head = nn.Linear(dim, num_classes)
    with torch.no_grad():  # nn.Linear's uniform init, drawn from this seed's own generator
        weight, bias = init_heads([torch.Generator().manual_seed(seed)], dim, num_classes)
        head.weight.copy_(weight[0])
        head.bias.copy_(bias[0])
    head = head.to(device)
    if recipe.optimizer == "sgd":
        opt = torch.optim.SGD(
            head.parameters(),
            lr=recipe.lr,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
        )
    elif recipe.optimizer == "lars":
        opt = LARS(
            head.parameters(),
            lr=recipe.lr,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
            eta=LARS_TRUST,
        )
    else:
        opt = torch.optim.Adam(head.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    n = images.shape[0]
    per_epoch = n // recipe.batch_size if recipe.drop_last else math.ceil(n / recipe.batch_size)
    if per_epoch < 1:
        raise UserError(f"{n} training images give no full batch of {recipe.batch_size}")
    total = recipe.epochs * per_epoch
    labels = labels.to(device)
    step = 0
    with _frozen(encoder, recipe.encoder_bn):
        for epoch in range(recipe.epochs):
            if recipe.schedule == "multistep":  # MoCo's main_lincls: lr x 0.1 at each milestone
                passed = sum(epoch >= m for m in recipe.milestones)
                for group in opt.param_groups:
                    group["lr"] = recipe.lr * 0.1**passed
            order = torch.randperm(n, generator=gen, device=device)
            for b in range(per_epoch):
                idx = order[b * recipe.batch_size : (b + 1) * recipe.batch_size]
                views = augment(images[idx], gen)
                features = _features(encoder, views, mean, std)
                if recipe.schedule == "cosine":  # E-SSL's adjust_learning_rate, no warm-up
                    for group in opt.param_groups:
                        group["lr"] = recipe.lr * 0.5 * (1 + math.cos(math.pi * step / total))
                loss = F.cross_entropy(head(features), labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
    return head


def augmented_linear_probe(
    encoder: nn.Module,
    train_images: Tensor,
    train_labels: Tensor,
    test_images: Tensor,
    test_labels: Tensor,
    *,
    num_classes: int,
    mean: Tensor,
    std: Tensor,
    recipe: AugmentedProbe | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    eval_batch_size: int = 512,
) -> dict:
    """Accuracy of linear classifiers trained on augmented views of the frozen `encoder`.

    `train_images`/`test_images`: uint8 (N, C, H, W); `mean`/`std`: the encoder's per-channel
    input normalisation in [0, 1] units. One classifier per seed `seed`, `seed + 1`, ... (each
    with its own generator for order and views). With `recipe.encoder_bn == "train"` each seed
    trains on its own copy of the encoder, whose BatchNorm statistics the training batches move
    (CARE's protocol); the test then reads that copy in eval mode. Returns {"acc_mean",
    "acc_std" (sample std over seeds, 0 for one), "accs", "seconds"}, accuracies in percent
    (exact over the test set).
    """
    recipe = recipe or AugmentedProbe()
    began = time.perf_counter()
    if train_images.dtype != torch.uint8 or train_images.ndim != 4:
        raise UserError(f"images must be uint8 (N, C, H, W), got {train_images.dtype}")
    check_splits(
        train_images.flatten(1), train_labels, test_images.flatten(1), test_labels, num_classes
    )
    device = torch.device(device)
    train_images = train_images.to(device)  # indexed on the device every step: no host sync
    mean, std = mean.to(device, torch.float32), std.to(device, torch.float32)
    accs = []
    for i in range(recipe.seeds):
        net = copy.deepcopy(encoder) if recipe.encoder_bn == "train" else encoder
        net = net.to(device)
        head = train_probe_head(
            net, train_images, train_labels, num_classes, recipe, mean, std, seed + i, device
        )
        accs.append(
            _test_accuracy(net, test_images, test_labels, head, recipe, mean, std, eval_batch_size)
        )
    accs_t = torch.tensor(accs, dtype=torch.float64)
    return {
        "acc_mean": accs_t.mean().item(),
        "acc_std": accs_t.std().item() if len(accs) > 1 else 0.0,
        "accs": accs,
        "seconds": time.perf_counter() - began,
    }
