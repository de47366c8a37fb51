"""How much a frozen encoder keeps of each transformation: label probes and invariance.

For a transformation with K elements (label 0 the identity), every image gets one label drawn
uniformly; a linear and a small MLP probe learn to predict that label from the frozen features
of the transformed image (train split) and are scored on the test split. The invariance score is
the mean cosine similarity between f(x) and f(g x) on the test images for g drawn uniformly among
the K - 1 non-identity elements: 1.0 means the features do not see the transformation at all.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from equissl.errors import UserError
from equissl.eval.features import eval_mode, extract_features
from equissl.eval.linear import init_heads, linear_probe, standardise
from equissl.transforms import get_transformation

__all__ = ["equivariance_metrics", "invariance_score", "mlp_probe"]

MLP_HIDDEN = 512
MLP_BATCH_SIZE = 256
MLP_LR = 1e-3


def invariance_score(features_a: Tensor, features_b: Tensor) -> float:
    """Mean over rows of the cosine similarity between features_a[i] and features_b[i].

    Both are (N, ...) and flattened to (N, D); computed in float64. A zero row has similarity 0.
    """
    if features_a.shape != features_b.shape or features_a.ndim < 1 or features_a.shape[0] == 0:
        raise UserError(
            "invariance_score needs two non-empty feature tensors of the same shape, got "
            f"{tuple(features_a.shape)} and {tuple(features_b.shape)}"
        )
    a = features_a.reshape(features_a.shape[0], -1).double()
    b = features_b.reshape(features_b.shape[0], -1).double()
    return F.cosine_similarity(a, b, dim=1, eps=1e-12).mean().item()


def _label_generator(seed: int, name: str) -> torch.Generator:
    """A generator per (seed, transformation name): labels do not depend on the order of names."""
    return torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % 2**63)


def mlp_probe(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    num_classes: int,
    epochs: int = 100,
    batch_size: int = MLP_BATCH_SIZE,
    lr: float = MLP_LR,
    seed: int = 0,
) -> float:
    """Test accuracy (percent) of a features -> min(512, 4D) -> ReLU -> classes MLP.

    Features are standardised with the train statistics; the MLP (nn.Linear-style init from a
    torch.Generator seeded with `seed`, which also draws every epoch's mini-batch order) is
    trained with Adam on the cross-entropy for `epochs` epochs, on the features' device.
    """
    train_x, test_x = standardise(train_x.float(), test_x.float())
    device = train_x.device
    n, dim = train_x.shape
    hidden = min(MLP_HIDDEN, 4 * dim)
    gen = torch.Generator().manual_seed(seed)
    (w1,), (b1,) = init_heads([gen], dim, hidden)
    (w2,), (b2,) = init_heads([gen], hidden, num_classes)
    params = [p.to(device).requires_grad_() for p in (w1, b1, w2, b2)]
    w1, b1, w2, b2 = params
    fused = device.type in ("cpu", "cuda") or None
    opt = torch.optim.Adam(params, lr=lr, fused=fused)
    train_y = train_y.to(device, torch.long)
    batch_size = min(batch_size, n)
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen).to(device)
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                logits = F.linear(F.relu(F.linear(train_x[idx], w1, b1)), w2, b2)
                loss = F.cross_entropy(logits, train_y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    with torch.no_grad():
        pred = F.linear(F.relu(F.linear(test_x, w1, b1)), w2, b2).argmax(1)
        return 100.0 * (pred == test_y.to(device)).double().mean().item()


def _check_images(train_images: Tensor, test_images: Tensor, mean: Tensor, std: Tensor) -> None:
    for split, images in (("train", train_images), ("test", test_images)):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[0] == 0:
            raise UserError(
                f"{split} images must be a non-empty uint8 (N,C,H,W) tensor, "
                f"got {images.dtype} {tuple(images.shape)}"
            )
    if train_images.shape[1:] != test_images.shape[1:]:
        raise UserError(
            f"train and test images differ in shape: {tuple(train_images.shape[1:])} vs "
            f"{tuple(test_images.shape[1:])}"
        )
    channels, height, width = train_images.shape[1:]
    if height != width:
        raise UserError(f"images must be square, got {height}x{width}")
    if mean.shape != (channels,) or std.shape != (channels,):
        raise UserError(
            f"mean and std must have shape ({channels},), got {tuple(mean.shape)} and {tuple(std.shape)}"
        )


def equivariance_metrics(
    backbone: nn.Module,
    train_images: Tensor,
    test_images: Tensor,
    names: Sequence[str],
    *,
    mean: Tensor,
    std: Tensor,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    limit: int = 5000,
    seed: int = 0,
    mlp_epochs: int = 100,
) -> dict[str, float]:
    """Per transformation `name`: `<name>_linear_acc`, `<name>_mlp_acc` (percent), `<name>_invariance`.

    Images are uint8 (N, C, H, W), square, and each split is cut to its first `limit` images after
    a shuffle seeded with `seed`. Transformations (from `equissl.transforms.get_transformation`,
    built at the images' own size) act on the [0, 1] floats before normalisation with `mean`/`std`,
    as in training. For each name every train and test image gets a uniform label from a generator
    seeded with (seed, name); the frozen backbone (eval mode, no gradient, `batch_size` images at a
    time on `device`) encodes the transformed images once per split; a linear probe (`linear_probe`,
    3 seeds from `seed`) and an MLP probe (`mlp_probe`, `mlp_epochs` epochs) predict the label from
    the train features and are scored on the test features. The invariance is the mean cosine
    similarity between the features of each test image and of that image transformed by a uniform
    non-identity element (one more pass over the test split); the untransformed test features are
    computed once for all names. The backbone's train/eval modes are restored afterwards.
    """
    _check_images(train_images, test_images, mean, std)
    names = list(names)
    if len(set(names)) != len(names):
        raise UserError(f"transformation names repeat: {names}")
    for key, value in (("batch_size", batch_size), ("limit", limit), ("mlp_epochs", mlp_epochs)):
        if value < 1:
            raise UserError(f"{key} must be at least 1, got {value}")
    device = torch.device(device)
    channels, size = train_images.shape[1], train_images.shape[2]
    transformations = [get_transformation(name, size, channels) for name in names]
    for t in transformations:
        if t.num_labels < 2:
            raise UserError(f"transformation {t.name!r} has {t.num_labels} element(s), need 2+")

    pick = torch.Generator().manual_seed(seed)
    train_idx = torch.randperm(train_images.shape[0], generator=pick)[:limit]
    test_idx = torch.randperm(test_images.shape[0], generator=pick)[:limit]
    train_images = train_images[train_idx.to(train_images.device)]
    test_images = test_images[test_idx.to(test_images.device)]
    n_train, n_test = train_images.shape[0], test_images.shape[0]

    def encode(images: Tensor, labels: Tensor | None = None, apply=None) -> Tensor:
        kw = dict(mean=mean, std=std, batch_size=batch_size, device=device)
        return extract_features(backbone, images, transform=apply, labels=labels, **kw).to(device)

    results: dict[str, float] = {}
    with eval_mode(backbone):
        plain_test = encode(test_images)
        for name, t in zip(names, transformations, strict=True):
            k = t.num_labels
            gen = _label_generator(seed, name)
            train_y = t.sample(n_train, gen)
            test_y = t.sample(n_test, gen)
            moved_y = torch.randint(1, k, (n_test,), generator=gen)
            train_x = encode(train_images, train_y, t.apply)
            test_x = encode(test_images, test_y, t.apply)
            moved_x = encode(test_images, moved_y, t.apply)
            linear = linear_probe(
                train_x, train_y, test_x, test_y, num_classes=k, device=device, seed=seed
            )
            results[f"{name}_linear_acc"] = linear["acc_mean"]
            results[f"{name}_mlp_acc"] = mlp_probe(
                train_x, train_y, test_x, test_y, num_classes=k, epochs=mlp_epochs, seed=seed
            )
            results[f"{name}_invariance"] = invariance_score(plain_test, moved_x)
    return results
