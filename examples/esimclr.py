"""E-SimCLR (Dangovski et al., ICLR 2022) as one plain PyTorch loop over equissl's public blocks.

SimCLR on two augmented views (E-SSL's cross-view InfoNCE, each anchor against the other view),
plus the E-SSL term: a half-size crop of every image, turned by all four 90-degree rotations,
whose rotation an MLP predicts from the backbone features; loss = InfoNCE + 0.4 x cross-entropy.
The uint8 images live on the device and every augmentation is batched there. The frozen backbone
is then scored by a weighted kNN. Data: the embedded digits (8x8, upsampled by the crops); any
uint8 (N, C, H, W) set works (`equissl.data.load_data` reads CIFAR-10 and others).

    python examples/esimclr.py                       # 50 steps: a few minutes on 2 CPU cores
    python examples/esimclr.py --size 32 --width 64 --device cuda   # the paper's sizes
"""

from __future__ import annotations

import argparse
import math

import torch

from equissl.augment import build_augment, channel_stats, normalize
from equissl.data.digits import read_digits
from equissl.eval import extract_features, knn_accuracy
from equissl.models import build_backbone, projector, transformation_head
from equissl.objectives import info_nce, prediction_loss
from equissl.transforms import get_transformation


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="E-SimCLR on the embedded digits")
    p.add_argument("--size", type=int, default=16, help="view side (32: the paper's)")
    p.add_argument("--width", type=int, default=8, help="ResNet-18 width (64: the paper's)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: none)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.06, help="SGD lr at batch 256 (scaled)")
    p.add_argument("--weight", type=float, default=0.4, help="lambda of the rotation term")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def cosine_with_warmup(step: int, total: int, warmup: int) -> float:
    """E-SSL's schedule as a factor of the base lr: linear warm-up, then cosine to 0."""
    if step < warmup:
        return step / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


def main(argv: list[str] | None = None) -> dict:
    """Pretrain, print the loss now and then and a kNN accuracy; return both."""
    args = parse(argv)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    gen = torch.Generator(device).manual_seed(args.seed)  # draws every view of every step
    data = read_digits()
    images = data.train.images.to(device)  # uint8 (N, C, H, W), decoded once
    mean, std = channel_stats(images)
    channels, n = images.shape[1], images.shape[0]

    # Blocks: SimCLR views, E-SSL's half-size crops and their rotations, backbone and two heads.
    view = build_augment("simclr", args.size)
    crop = build_augment("simclr", args.size // 2)
    rotation = get_transformation("rotation", args.size // 2, channels)
    backbone = build_backbone("resnet18", width=args.width, in_channels=channels).to(device)
    d = backbone.num_features  # 512 at width 64
    proj = projector(d, 4 * d, 4 * d).to(device)  # 512-2048-2048, BatchNorm on every layer
    head = transformation_head(d, 4 * d, rotation.num_labels).to(device)  # 512-2048-2048-4
    params = [*backbone.parameters(), *proj.parameters(), *head.parameters()]
    opt = torch.optim.SGD(params, lr=args.lr * args.batch / 256, momentum=0.9, weight_decay=5e-4)
    per_epoch = n // args.batch
    total = per_epoch * args.epochs if args.steps <= 0 else min(args.steps, per_epoch * args.epochs)
    warmup = min(10 * per_epoch, total // 10)  # E-SSL: 10 epochs (of 800), here <= 10%
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_with_warmup(s, total, warmup))

    def encode(x: torch.Tensor) -> torch.Tensor:
        return backbone(normalize(x, mean, std))

    losses: list[torch.Tensor] = []  # kept on the device: no sync per step
    step = 0
    while step < total:
        order = torch.randperm(n, generator=gen, device=device)[: per_epoch * args.batch]
        for idx in order.view(per_epoch, args.batch)[: total - step]:
            x = images[idx]
            # Invariance: two views, one projector, InfoNCE against the other view.
            z1, z2 = proj(encode(view(x, gen))), proj(encode(view(x, gen)))
            loss_inv = info_nce(z1, z2, temperature=0.5)
            # Equivariance: every rotation of a small crop (4N views, labels 0..3 in blocks).
            rotated, labels = rotation.expand(crop(x, gen))
            loss_rot, acc = prediction_loss(head(encode(rotated)), labels)
            loss = loss_inv + args.weight * loss_rot
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.detach())
            step += 1
            if step % max(total // 10, 1) == 0 or step == total:
                print(f"step {step}/{total}  loss {loss.item():.4f}  rotation acc {acc:.2f}")

    # Frozen-feature evaluation: weighted kNN (k=200) of backbone features, views' size.
    def features(x: torch.Tensor) -> torch.Tensor:
        return extract_features(backbone, x, mean=mean, std=std, size=args.size, device=device)

    knn = knn_accuracy(
        features(data.train.images),
        data.train.labels,
        features(data.test.images),
        data.test.labels,
        num_classes=data.num_classes,
    )
    print(f"E-SimCLR: kNN accuracy {knn:.2f} % on {len(data.test)} test digits after {step} steps")
    return {"losses": torch.stack(losses).tolist() if losses else [], "knn_acc": knn, "steps": step}


if __name__ == "__main__":
    main()
