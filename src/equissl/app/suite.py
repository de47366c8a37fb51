"""The evaluation suite beyond the linear probe and kNN, each part switched on in `eval`:
low-label probes and fine-tuning, transfer to a second dataset, corruption robustness, and
pictures of the embedding. Every part reads the features already cached for the probe where it
can, so a part costs what it adds."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch
from omegaconf import DictConfig

from equissl.app.progress import phase
from equissl.data import DataSplits, load_image_dataset
from equissl.data.subset import balanced_subset
from equissl.eval import extract_features, knn_accuracy, linear_probe
from equissl.eval.embedding import (
    nearest_neighbours,
    retrieval_queries,
    tsne_coordinates,
    umap_coordinates,
)
from equissl.eval.linear_augmented import AugmentedProbe, augmented_linear_probe
from equissl.eval.low_label import finetune_accuracy, low_label_indices
from equissl.reports.embedding import plot_embedding_maps, plot_retrieval


class FrozenEncoder(Protocol):
    """What the suite's parts read of an encoder: a method, or `equissl baseline pixels`'s
    flattened pixels (app.baseline.PixelEncoder)."""

    backbone: torch.nn.Module
    mean: torch.Tensor  # per channel, [0, 1] units
    std: torch.Tensor


RETRIEVAL_QUERIES = 20  # grid rows: one query per class, at most this many classes
RETRIEVAL_NEIGHBOURS = 8


def probe(cfg: DictConfig, train_f, train_y, test_f, test_y, num_classes, device, **kw) -> dict:
    lin = cfg.eval.linear
    return linear_probe(
        train_f,
        train_y,
        test_f,
        test_y,
        num_classes=num_classes,
        seeds=lin.seeds,
        epochs=lin.epochs,
        batch_size=lin.batch_size,
        lr=lin.lr,
        weight_decay=lin.weight_decay,
        device=device,
        solver=lin.solver,
        **kw,
    )


def probe_and_knn(
    cfg: DictConfig,
    train_f: torch.Tensor,
    test_f: torch.Tensor,
    data: DataSplits,
    device: torch.device,
    return_heads: bool = False,
    label: str = "",
) -> dict[str, Any]:
    """Linear probe (cfg.eval.linear) and kNN (cfg.eval.knn; k at most the training size) of
    cached features of `data`'s splits; "heads" (with return_heads) maps test-like features to
    the probe's logits. Prints one line per part, after `label` (e.g. "transfer: ")."""
    with phase(f"{label}linear probe") as p:
        result = probe(
            cfg,
            train_f,
            data.train.labels,
            test_f,
            data.test.labels,
            data.num_classes,
            device,
            return_heads=return_heads,
        )
        seeds = cfg.eval.linear.seeds
        p.what += f" ({seeds} seed{'s' if seeds > 1 else ''}): {result['acc_mean']:.2f} %"
    with phase(f"{label}kNN (k={cfg.eval.knn.k})") as p:
        knn = knn_accuracy(
            train_f,
            data.train.labels,
            test_f,
            data.test.labels,
            num_classes=data.num_classes,
            k=cfg.eval.knn.k,
            temperature=cfg.eval.knn.temperature,
        )
        p.what += f": {knn:.2f} %"
    out = {
        "linear_acc": result["acc_mean"],
        "linear_std": result["acc_std"],
        "linear_accs": result["accs"],
        "linear_seconds": result["seconds"],
        "knn_acc": knn,
    }
    if return_heads:
        out["heads"] = result["heads"]
    return out


def augmented_probe_results(
    method: FrozenEncoder, data: DataSplits, cfg: DictConfig, device: torch.device
) -> dict[str, Any]:
    """`eval.linear.augmented`: the probe trained on augmented views through the frozen
    backbone every epoch (E-SSL's or CARE's protocol), as linear_aug_acc / _std / _accs /
    _seconds beside the cached probe's linear_acc."""
    a = cfg.eval.linear.augmented
    recipe = AugmentedProbe(
        optimizer=a.optimizer,
        lr=a.lr,
        momentum=a.momentum,
        weight_decay=a.weight_decay,
        schedule=a.schedule,
        milestones=tuple(a.milestones),
        epochs=a.epochs,
        batch_size=a.batch_size,
        seeds=a.seeds,
        drop_last=a.drop_last,
        train_augment=a.train_augment,
        size=a.size,
        scale=(a.scale_min, 1.0),
        interpolation=a.interpolation,
        blur_p=a.blur_p,
        blur_kernel=a.blur_kernel,
        test_resize=a.test_resize,
        test_crop=a.test_crop,
        encoder_bn=a.encoder_bn,
    )
    result = augmented_linear_probe(
        method.backbone,
        data.train.images,
        data.train.labels,
        data.test.images,
        data.test.labels,
        num_classes=data.num_classes,
        mean=method.mean,
        std=method.std,
        recipe=recipe,
        seed=cfg.seed,
        device=device,
        eval_batch_size=cfg.eval.batch_size,
    )
    return {
        "linear_aug_acc": result["acc_mean"],
        "linear_aug_std": result["acc_std"],
        "linear_aug_accs": result["accs"],
        "linear_aug_seconds": result["seconds"],
    }


def low_label_results(
    method: FrozenEncoder,
    data: DataSplits,
    cfg: DictConfig,
    device: torch.device,
    train_f: torch.Tensor,
    test_f: torch.Tensor,
) -> dict[str, Any]:
    """For each fraction p of `eval.low_label`: `low_label_<p>`: {labels, linear_acc,
    linear_std, and with eval.finetune.epochs > 0 finetune_acc}; p as a percentage."""
    out: dict[str, Any] = {}
    ft = cfg.eval.finetune
    for fraction in cfg.eval.low_label:
        keep = low_label_indices(data.train.labels, fraction, cfg.seed)
        labels = data.train.labels[keep]
        result = probe(
            cfg, train_f[keep], labels, test_f, data.test.labels, data.num_classes, device
        )
        row: dict[str, Any] = {
            "labels": int(keep.numel()),
            "linear_acc": result["acc_mean"],
            "linear_std": result["acc_std"],
        }
        if ft.epochs > 0:
            row["finetune_acc"] = finetune_accuracy(
                method.backbone,
                data.train.images[keep],
                labels,
                data.test.images,
                data.test.labels,
                num_classes=data.num_classes,
                mean=method.mean,
                std=method.std,
                epochs=ft.epochs,
                lr=ft.lr,
                batch_size=ft.batch_size,
                weight_decay=ft.weight_decay,
                seed=cfg.seed,
                device=device,
                eval_batch_size=cfg.eval.batch_size,
            )
        out[f"low_label_{100 * fraction:g}"] = row
    return out


def read_like(
    data: DataSplits, section: DictConfig, cache_dir: str | None, config_key: str
) -> DataSplits:
    """The second dataset of a config section (`eval.transfer`, `eval.data`: name, path, limit,
    test_limit), read with `data`'s channels and resized to its image size."""
    return load_image_dataset(
        section.name,
        section.path,
        cache_dir=cache_dir,
        channels=data.channels,
        size=data.image_size,
        limit=section.limit,
        test_limit=section.test_limit,
        config_key=config_key,
    )


def transfer_results(
    method: FrozenEncoder, data: DataSplits, cfg: DictConfig, device: torch.device
) -> dict[str, Any]:
    """Linear probe and kNN of the frozen encoder on `eval.transfer` (a second dataset read
    with the pretraining data's channels and resized to its image size)."""
    t = cfg.eval.transfer
    other = read_like(data, t, cfg.data.cache_dir, "eval.transfer")
    kw = dict(mean=method.mean, std=method.std, batch_size=cfg.eval.batch_size, device=device)
    train_f = extract_features(method.backbone, other.train.images, **kw)
    test_f = extract_features(method.backbone, other.test.images, **kw)
    result = probe_and_knn(cfg, train_f, test_f, other, device, label=f"transfer {t.name}: ")
    return {
        "transfer_data": t.name,
        "transfer_linear_acc": result["linear_acc"],
        "transfer_linear_std": result["linear_std"],
        "transfer_knn_acc": result["knn_acc"],
    }


def embedding_views(
    data: DataSplits,
    cfg: DictConfig,
    train_f: torch.Tensor,
    test_f: torch.Tensor,
    figures_dir: Path,
) -> dict[str, Any]:
    """embedding_map.png (t-SNE, and UMAP when installed, of the first eval.embedding_limit
    test features of a class-balanced subset) and retrieval.png (test queries, one per class
    where possible, with their nearest training images)."""
    keep = balanced_subset(data.test.labels, cfg.eval.embedding_limit, cfg.seed)
    maps = {"t-SNE": tsne_coordinates(test_f[keep], cfg.seed)}
    umap = umap_coordinates(test_f[keep], cfg.seed)
    if umap is not None:
        maps["UMAP"] = umap
    classes = data.train.classes
    plot_embedding_maps(maps, data.test.labels[keep], classes, figures_dir / "embedding_map.png")
    queries = retrieval_queries(data.test.labels, cfg.seed, RETRIEVAL_QUERIES)
    found = nearest_neighbours(test_f[queries], train_f, RETRIEVAL_NEIGHBOURS)
    plot_retrieval(
        data.test.images[queries],
        data.train.images[found],
        data.test.labels[queries],
        data.train.labels[found],
        classes,
        figures_dir / "retrieval.png",
    )
    hits = []
    for chunk in keep.split(256):
        near = nearest_neighbours(test_f[chunk], train_f, RETRIEVAL_NEIGHBOURS)
        hits.append(data.train.labels[near] == data.test.labels[chunk].unsqueeze(1))
    return {
        "embedding_maps": list(maps),
        # share of the 8 nearest training images that have the query's class
        "retrieval_precision": 100.0 * float(torch.cat(hits).float().mean()),
    }


def corruption_results(
    method: FrozenEncoder,
    data: DataSplits,
    cfg: DictConfig,
    device: torch.device,
    heads,
    figures_dir: Path | None,
) -> dict[str, Any]:
    """Accuracy of the linear probe's heads (trained on clean features) on features of
    corrupted test images: `corruption_acc` {name: [severity 1..5]}, the mean over all of them
    `corruption_mean_acc`, and `corruption_clean_acc` on the same (eval.corruption_limit) test
    images; corruptions.png is the heat map."""
    from equissl.eval.corruptions import SEVERITIES, corrupt, corruptions_for
    from equissl.reports.heatmap import plot_corruption_heatmap

    names = list(cfg.eval.corruptions)
    if names == ["all"]:
        names = list(corruptions_for(data.channels))
    keep = balanced_subset(data.test.labels, cfg.eval.corruption_limit, cfg.seed)
    images, labels = data.test.images[keep], data.test.labels[keep]
    kw = dict(mean=method.mean, std=method.std, batch_size=cfg.eval.batch_size, device=device)

    def accuracy(features: torch.Tensor) -> float:
        right = heads(features).argmax(-1).cpu() == labels.unsqueeze(0)  # (seeds, N)
        return 100.0 * float(right.double().mean())

    table: dict[str, list[float]] = {}
    for i, name in enumerate(names):
        table[name] = []
        for severity in range(1, SEVERITIES + 1):
            gen = torch.Generator().manual_seed(cfg.seed * 10_000 + 100 * i + severity)

            def transform(x, _labels, name=name, severity=severity, gen=gen):
                return corrupt(x, name, severity, gen)

            features = extract_features(
                method.backbone, images, transform=transform, labels=labels, **kw
            )
            table[name].append(accuracy(features))
    clean = accuracy(extract_features(method.backbone, images, **kw))
    out = {
        "corruption_clean_acc": clean,
        "corruption_mean_acc": sum(map(sum, table.values())) / (len(table) * SEVERITIES),
        "corruption_acc": table,
    }
    if figures_dir is not None:
        plot_corruption_heatmap(table, clean, figures_dir / "corruptions.png")
    return out
