"""CARE (Gupta et al., ICLR 2024) as one plain PyTorch loop over equissl's public blocks.

SimCLR (NT-Xent over 2N-2 negatives) on two views augmented per image, plus CARE's term: one
pair of augmentations (t1, t2) drawn for the whole batch and applied to every image, and the
Gram matrices of the embeddings f(t1 x) and f(t2 x) matched within chunks of the batch, so that
each augmentation acts on the embedding sphere as an orthogonal map. Adam at a constant lr, as
the official CIFAR code. The frozen backbone is then scored by a weighted kNN. Data: the
embedded digits (8x8, upsampled by the crops); any uint8 (N, C, H, W) set works.

    python examples/care.py                          # 50 steps: a few minutes on 2 CPU cores
    python examples/care.py --size 32 --width 64 --device cuda   # CIFAR-10's sizes

The weight is that of equissl's mean-squared `care_loss`: the official code's w (0.03 with 16
chunks of 16 on CIFAR-10) is w x 2 (m - 1) here for chunks of m images (0.9).
"""

from __future__ import annotations

import argparse

import torch

from equissl.augment import build_augment, channel_stats, normalize
from equissl.data.digits import read_digits
from equissl.eval import extract_features, knn_accuracy
from equissl.models import build_backbone, projector
from equissl.objectives import care_loss, nt_xent


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="SimCLR + CARE on the embedded digits")
    p.add_argument("--size", type=int, default=16, help="view side (32: CIFAR's)")
    p.add_argument("--width", type=int, default=8, help="ResNet-18 width (64: 512 features)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: none)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam lr (constant)")
    p.add_argument("--weight", type=float, default=0.9, help="weight of the CARE term")
    p.add_argument("--chunks", type=int, default=16, help="Gram matrices per batch")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


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

    # Blocks: the official CIFAR views (crop scale 0.08-1, blur p 0.5), backbone, projector.
    view = build_augment("simclr", args.size, scale=(0.08, 1.0), blur_p=0.5)
    backbone = build_backbone("resnet18", width=args.width, in_channels=channels).to(device)
    d = backbone.num_features
    proj = projector(d, d, d // 4, norm="hidden").to(device)  # CARE: 2048-512-128 (ResNet-50)
    params = [*backbone.parameters(), *proj.parameters()]
    opt = torch.optim.Adam(params, lr=args.lr, weight_decay=1e-6)
    per_epoch = n // args.batch
    total = per_epoch * args.epochs if args.steps <= 0 else min(args.steps, per_epoch * args.epochs)

    def embed(x: torch.Tensor) -> torch.Tensor:
        return proj(backbone(normalize(x, mean, std)))

    losses: list[torch.Tensor] = []  # kept on the device: no sync per step
    step = 0
    while step < total:
        order = torch.randperm(n, generator=gen, device=device)[: per_epoch * args.batch]
        for idx in order.view(per_epoch, args.batch)[: total - step]:
            x = images[idx]
            # Invariance: two views, each image augmented on its own, NT-Xent.
            loss_inv = nt_xent(embed(view(x, gen)), embed(view(x, gen)), temperature=0.5)
            # Equivariance: t1 and t2 drawn once (chunks=1) and applied to the whole batch,
            # then Gram matching of f(t1 x) and f(t2 x) within each of the chunks.
            w1, w2 = embed(view(x, gen, chunks=1)), embed(view(x, gen, chunks=1))
            loss_care = care_loss(w1, w2, chunks=args.chunks)
            loss = loss_inv + args.weight * loss_care
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
            step += 1
            if step % max(total // 10, 1) == 0 or step == total:
                print(f"step {step}/{total}  loss {loss.item():.4f}  care {loss_care.item():.5f}")

    # Frozen-feature evaluation: weighted kNN (k=200, CARE's temperature 0.5) of the backbone.
    def features(x: torch.Tensor) -> torch.Tensor:
        return extract_features(backbone, x, mean=mean, std=std, size=args.size, device=device)

    knn = knn_accuracy(
        features(data.train.images),
        data.train.labels,
        features(data.test.images),
        data.test.labels,
        num_classes=data.num_classes,
        temperature=0.5,
    )
    print(f"CARE: kNN accuracy {knn:.2f} % on {len(data.test)} test digits after {step} steps")
    return {"losses": torch.stack(losses).tolist() if losses else [], "knn_acc": knn, "steps": step}


if __name__ == "__main__":
    main()
