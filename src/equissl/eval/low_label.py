"""Low-label evaluation: a linear probe and a fine-tuned encoder from a small class-balanced
fraction of the training labels (SimCLR's 1% / 10% protocol)."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from equissl.augment import build_augment, normalize
from equissl.data.subset import balanced_subset
from equissl.eval.features import extract_features


def low_label_indices(labels: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """Indices of a seeded, class-balanced subset holding `fraction` of the labels (at least
    one per class)."""
    classes = int(labels.max()) + 1
    n = max(round(fraction * labels.shape[0]), classes)
    return balanced_subset(labels, n, seed)


def finetune_accuracy(
    backbone: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    num_classes: int,
    mean: torch.Tensor,
    std: torch.Tensor,
    epochs: int,
    lr: float = 0.05,
    batch_size: int = 256,
    weight_decay: float = 5e-4,
    seed: int = 0,
    device: torch.device | str = "cpu",
    eval_batch_size: int = 512,
) -> float:
    """Test accuracy (percent) after fine-tuning a copy of `backbone` plus a linear head on
    uint8 `images` with crop+flip views (batched on the device), SGD with Nesterov momentum,
    cosine decay, lr scaled by batch_size / 256. The given backbone is not changed."""
    device = torch.device(device)
    net = copy.deepcopy(backbone).to(device).train()
    head = nn.Linear(net.num_features, num_classes).to(device)
    params = [*net.parameters(), *head.parameters()]
    base_lr = lr * batch_size / 256
    opt = torch.optim.SGD(
        params, lr=base_lr, momentum=0.9, nesterov=True, weight_decay=weight_decay
    )
    augment = build_augment("cropflip", images.shape[-1], scale=(0.2, 1.0))
    mean, std, labels = mean.to(device), std.to(device), labels.to(device)
    gen = torch.Generator().manual_seed(seed)  # batch order
    views = torch.Generator(device=device).manual_seed(seed)  # crops and flips
    n = images.shape[0]
    batch = min(batch_size, n)
    steps_per_epoch = max(n // batch, 1)
    total, step = epochs * steps_per_epoch, 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(steps_per_epoch):
            idx = order[i * batch : (i + 1) * batch]
            x = augment(images[idx].to(device), views)
            loss = F.cross_entropy(head(net(normalize(x, mean, std))), labels[idx.to(device)])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for group in opt.param_groups:
                group["lr"] = base_lr * 0.5 * (1 + math.cos(math.pi * step / total))
            opt.step()
            step += 1
    features = extract_features(
        net, test_images, mean=mean, std=std, batch_size=eval_batch_size, device=device
    )
    with torch.no_grad():
        pred = head(features.to(device)).argmax(1).cpu()
    return 100.0 * float((pred == test_labels).double().mean())
