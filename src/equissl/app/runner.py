"""Pretrain and evaluate runs: data, method, Lightning fit, frozen-feature evaluation, run folder.

A run folder `runs/<name>/` holds config.yaml, metrics.csv, tb/ (TensorBoard), last.ckpt and
results.json. config.yaml, last.ckpt and results.json are written whole (temporary file, then
rename); metrics.csv is appended to by Lightning's CSV logger.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from equissl.app import signals
from equissl.app.config import to_yaml, upgrade_saved
from equissl.app.cpu import apply_cpu_settings
from equissl.app.loggers import check_logger, log_run
from equissl.app.outputs import check_file_writable, check_writable, run_folder_lock
from equissl.app.progress import count, echo, format_seconds, phase, timed_load
from equissl.app.runs import (  # noqa: F401 - also equissl.app.runner's names, as before
    LEGACY_KEYS,
    backbone_label,
    method_label,
    read_checkpoint,
    run_dir_of,
    upgrade_state,
    write_json,
)
from equissl.app.streaming import stream_size, stream_source, streamed_run
from equissl.app.suite import (
    FrozenEncoder,
    augmented_probe_results,
    corruption_results,
    embedding_views,
    low_label_results,
    probe_and_knn,
    read_like,
    transfer_results,
)
from equissl.app.train import (
    PretrainModule,
    build_trainer,
    remove_stale_temps,
    truncate_metrics,
    uses_cuda,
)
from equissl.augment import channel_stats
from equissl.data import DataSplits
from equissl.errors import ConfigError, UserError
from equissl.eval import (
    equivariance_metrics,
    extract_features,
    geometry_metrics,
    hue_sensitivity,
)
from equissl.eval.features import eval_mode
from equissl.finite import describe_nonfinite, nonfinite_names
from equissl.methods import Method, build_method, transformation_accuracy
from equissl.reports import plot_rows_sensitivity
from equissl.reports.atomic import write_text_atomic
from equissl.warn import warn

# Settings a resumed run must share with the run that wrote the checkpoint.
RESUME_KEYS = ("seed", "data", "augment", "method", "backbone", "optim")
RESUME_FREE = ("data.cache_dir", "data.path", "data.device_resident", "optim.epochs")


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves by dotted key; the items of a list of sections by index (method.equivariance.0.size),
    a list of numbers whole."""
    if isinstance(tree, list) and tree and all(isinstance(item, dict) for item in tree):
        tree = dict(enumerate(tree))
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}
    return {prefix[:-1]: tree}


def read_resume_step(last: Path, cfg: DictConfig) -> int:
    """The global step of last.ckpt, after checking it was written by the same configuration."""
    ckpt = read_checkpoint(
        last,
        "global_step",
        unreadable="cannot resume from {path}: {why}; "
        "delete it or pass resume=never with another name=...",
    )
    step = int(ckpt["global_step"])
    saved_config = upgrade_saved(ckpt.get("equissl_config", {}))  # in today's spellings
    saved = _flat({k: saved_config.get(k) for k in RESUME_KEYS})
    now = _flat({k: OmegaConf.to_container(cfg, resolve=True)[k] for k in RESUME_KEYS})
    for key in sorted(set(saved) | set(now)):
        if not key.startswith(RESUME_FREE) and saved.get(key) != now.get(key):
            raise UserError(
                f"{last} was written with {key}={saved.get(key)!r}, not {now.get(key)!r}; "
                "pass another name=... for a new run"
            )
    return step


def pretraining_images(data: DataSplits) -> tuple[torch.Tensor, torch.Tensor]:
    """The images SSL trains on: the training split, plus the unlabeled split when present."""
    if data.unlabeled is None:
        return data.train.images, data.train.labels
    return (
        torch.cat([data.train.images, data.unlabeled.images]),
        torch.cat([data.train.labels, data.unlabeled.labels]),
    )


def method_for(cfg: DictConfig, data: DataSplits, mean: torch.Tensor, std: torch.Tensor) -> Method:
    """The configured method for `data`'s images and classes."""
    return build_method(
        cfg,
        in_channels=data.channels,
        image_size=data.image_size,
        num_classes=max(data.num_classes, 1),  # unlabelled data: an idle one-class classifier
        mean=mean,
        std=std,
    )


def _set_threads(cfg: DictConfig) -> None:
    device = "cuda" if uses_cuda(cfg) else "cpu"
    apply_cpu_settings(cfg.trainer.threads, cfg.trainer.cpu_allocator, device)


def geometry_encoders(method: Method) -> dict[str, Any]:
    """Encoders of float views in [0, 1] for the geometry diagnostics: `feat` (backbone
    features) and, when the method has a projector, `emb` (its L2-normalised output, the space
    where CARE's loss acts)."""
    head = method.embedding_head()
    if head is None:
        return {"feat": method.encode}
    # The diagnostics call every space on the same batch in turn: `emb` reuses the backbone
    # features `feat` just computed instead of running the backbone a second time.
    last: dict[str, torch.Tensor] = {}

    def feat(views: torch.Tensor) -> torch.Tensor:
        last["views"], last["features"] = views, method.encode(views)
        return last["features"]

    def emb(views: torch.Tensor) -> torch.Tensor:
        h = last["features"] if last.get("views") is views else method.encode(views)
        return F.normalize(head(h).float(), dim=1)

    return {"feat": feat, "emb": emb}


def evaluate_geometry(
    method: Method,
    data: DataSplits,
    cfg: DictConfig,
    device: torch.device,
    figures_dir: Path | None,
) -> dict[str, Any]:
    """`eval.geometry` (least-squares map of each transformation on held-out test images) and
    `eval.hue_sensitivity` (curve in the results, plot in `figures_dir`)."""
    out: dict[str, Any] = {}
    encoders = geometry_encoders(method)
    kw = dict(batch_size=cfg.eval.batch_size, device=device)
    with eval_mode(method):
        if cfg.eval.geometry:
            out.update(
                geometry_metrics(
                    encoders,
                    data.test.images,
                    list(cfg.eval.geometry),
                    limit=cfg.eval.geometry_limit,
                    seed=cfg.seed,
                    **kw,
                )
            )
        if cfg.eval.hue_sensitivity:
            curves = hue_sensitivity(
                encoders, data.test.images, limit=cfg.eval.geometry_limit, **kw
            )
            out["hue_sensitivity"] = curves
            if figures_dir is not None:
                row = {"name": method_label(cfg), "hue_sensitivity": curves}
                plot_rows_sensitivity([row], figures_dir / "hue_sensitivity.png")
    return out


def labelled_for_evaluation(data: DataSplits, cfg: DictConfig) -> DataSplits | None:
    """`data` when it has labels; for unlabelled pretraining data (a flat image folder), the
    labelled set of `eval.data`, read with the pretraining images' channels and size; None
    when there is none."""
    if data.num_classes > 0:
        return data
    if not cfg.eval.data.name:
        return None
    return read_like(data, cfg.eval.data, cfg.data.cache_dir, "eval.data")


def evaluate_method(
    method: Method,
    data: DataSplits,
    cfg: DictConfig,
    device: torch.device,
    figures_dir: Path | None = None,
) -> dict[str, Any]:
    """Linear probe and kNN on frozen backbone features with the suite's parts
    (`evaluate_encoder`), the online classifier's and each transformation head's accuracy, the
    equivariance probes of `eval.equivariance` and the geometry diagnostics of `eval.geometry`
    / `eval.hue_sensitivity` (its plot goes to `figures_dir`)."""
    labelled = labelled_for_evaluation(data, cfg)
    if labelled is None:
        warn(
            "the data has no labels, so there is no linear probe or kNN; evaluate on a labelled "
            "set with eval.data.name=... eval.data.path=..."
        )
        return {}
    unlabelled, data = labelled is not data, labelled
    method = method.to(device)
    t0 = time.perf_counter()
    out, test_f = evaluate_encoder(method, data, cfg, device, figures_dir)
    if unlabelled:  # the online classifier had no labels to learn from
        out["eval_data"] = cfg.eval.data.name
    else:
        out["online_acc"] = online_accuracy(method.classifier, test_f, data.test.labels)
    with phase("transformation heads") as p:
        accuracy = transformation_accuracy(
            method, data.test.images, cfg.eval.batch_size, cfg.eval.transform_limit
        )
        p.what += ": " + ", ".join(f"{k} {v:.2f} %" for k, v in accuracy.items())
        p.silent = not accuracy
    out.update(accuracy)
    if method.first_predicted is not None:  # one name for tables across transformations
        out["transform_acc"] = accuracy[f"{method.first_predicted}_acc"]
    if cfg.eval.equivariance:
        with phase("equivariance probes"):
            out.update(
                equivariance_metrics(
                    method.backbone,
                    data.train.images,
                    data.test.images,
                    list(cfg.eval.equivariance),
                    mean=method.mean,
                    std=method.std,
                    batch_size=cfg.eval.batch_size,
                    device=device,
                    limit=cfg.eval.equivariance_limit,
                    seed=cfg.seed,
                    mlp_epochs=cfg.eval.equivariance_mlp_epochs,
                )
            )
    if cfg.eval.geometry or cfg.eval.hue_sensitivity:
        with phase("geometry diagnostics"):
            out.update(evaluate_geometry(method, data, cfg, device, figures_dir))
    out["eval_seconds"] = time.perf_counter() - t0
    echo(f"evaluated in {format_seconds(out['eval_seconds'])}")
    return out


def evaluate_encoder(
    encoder: FrozenEncoder,
    data: DataSplits,
    cfg: DictConfig,
    device: torch.device,
    figures_dir: Path | None = None,
) -> tuple[dict[str, Any], torch.Tensor]:
    """What needs only a frozen backbone and its normalisation (a method, or the raw pixels of
    `equissl baseline pixels`) on labelled `data`: linear probe and kNN on cached features, and
    the suite's parts switched on in `eval` (augmented probe, low-label, transfer, corruptions,
    embedding pictures in `figures_dir`). Returns the results and the test features."""
    kw = dict(mean=encoder.mean, std=encoder.std, batch_size=cfg.eval.batch_size, device=device)
    n = data.train.images.shape[0] + data.test.images.shape[0]
    with phase(f"features: {count(n)} images") as features:
        train_f = extract_features(encoder.backbone, data.train.images, **kw)
        test_f = extract_features(encoder.backbone, data.test.images, **kw)
    out = probe_and_knn(cfg, train_f, test_f, data, device, return_heads=True)
    heads = out.pop("heads")
    if cfg.eval.linear.protocol == "augmented":
        with phase("augmented linear probe"):
            out.update(augmented_probe_results(encoder, data, cfg, device))
    if cfg.eval.low_label:
        with phase("low-label probes"):
            out.update(low_label_results(encoder, data, cfg, device, train_f, test_f))
    if cfg.eval.transfer.name:
        with phase(f"transfer to {cfg.eval.transfer.name}"):
            out.update(transfer_results(encoder, data, cfg, device))
    if cfg.eval.corruptions:
        with phase("corruptions"):
            out.update(corruption_results(encoder, data, cfg, device, heads, figures_dir))
    if cfg.eval.embedding_plot and figures_dir is not None:
        with phase("embedding maps and retrieval"):
            out.update(embedding_views(data, cfg, train_f, test_f, figures_dir))
    out["feature_seconds"] = features.seconds
    return out, test_f


@torch.no_grad()
def online_accuracy(
    classifier: torch.nn.Module, features: torch.Tensor, labels: torch.Tensor
) -> float:
    """Test accuracy (%) of the online classifier trained with the method, on the test split's
    frozen features (Wang et al.'s Equivariant Network reports this one)."""
    predicted = classifier(features.float()).argmax(1).cpu()
    return 100.0 * float((predicted == labels.cpu()).float().mean())


def _first_process() -> bool:
    """Rank zero (the process that owns the run folder under DDP)."""
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def check_accelerator(cfg: DictConfig) -> None:
    """A GPU asked for on a machine without one stops before anything is made."""
    if cfg.trainer.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(
            f"trainer.accelerator={cfg.trainer.accelerator} but this machine has no CUDA GPU "
            "that torch can use; pass trainer.accelerator=cpu (or auto)"
        )


def start_fresh(run_dir: Path) -> None:
    """A run with no checkpoint starts with a clean log: drop metrics.csv and TensorBoard events
    a run that died before its first checkpoint left behind."""
    (run_dir / "metrics.csv").unlink(missing_ok=True)
    shutil.rmtree(run_dir / "tb", ignore_errors=True)


def pretrain(cfg: DictConfig, callbacks: list[L.Callback] = ()) -> dict[str, Any]:
    """Pretrain as configured, then evaluate; returns (and writes) the run's results."""
    _set_threads(cfg)
    run_dir = run_dir_of(cfg)
    check_accelerator(cfg)
    check_logger(cfg.trainer.logger)
    check_writable(run_dir, "run folder")
    if (run_dir / "results.md").is_file() and not (run_dir / "config.yaml").is_file():
        raise ConfigError(
            f"{run_dir} is the folder of a sweep or experiment (it holds results.md); choose "
            "another name=... for this run"
        )
    lock = run_folder_lock(run_dir) if _first_process() else contextlib.nullcontext()
    with lock:
        return _pretrain_locked(cfg, run_dir, list(callbacks))


def _pretrain_locked(cfg: DictConfig, run_dir: Path, callbacks: list[L.Callback]) -> dict:
    remove_stale_temps(run_dir)
    last = run_dir / "last.ckpt"
    if cfg.resume == "never" and last.exists():
        raise UserError(
            f"{run_dir} already holds a run; pass another name=... or resume=auto to continue it"
        )
    step = read_resume_step(last, cfg) if cfg.resume == "auto" and last.exists() else None
    say = print if _first_process() else (lambda line: None)
    shards = stream_source(cfg, say)
    if shards is not None:  # streamed from shards: the evaluation reads them after training
        L.seed_everything(cfg.seed, verbose=False)
        method, module = streamed_run(cfg, shards)
        data = None
    else:
        data = timed_load(cfg.data)
        images, labels = pretraining_images(data)
        if images.shape[0] < cfg.optim.batch_size:
            raise UserError(
                f"optim.batch_size={cfg.optim.batch_size} is larger than the {images.shape[0]} "
                "training images; lower optim.batch_size or raise data.limit"
            )
        steps_per_epoch = images.shape[0] // cfg.optim.batch_size
        if step is not None and step > cfg.optim.epochs * steps_per_epoch:
            raise UserError(
                f"{last} is at step {step} (epoch {step / steps_per_epoch:g}), past "
                f"optim.epochs={cfg.optim.epochs}; raise optim.epochs or pass another name=..."
            )
        L.seed_everything(cfg.seed, verbose=False)
        mean, std = channel_stats(images)
        method = method_for(cfg, data, mean, std)
        module = PretrainModule(cfg, method, images, labels)
    run_dir.mkdir(parents=True, exist_ok=True)
    if step is None and _first_process():
        start_fresh(run_dir)
    trainer = build_trainer(cfg, run_dir, callbacks=callbacks)
    ckpt_path = None if step is None else str(last)
    if trainer.is_global_zero:
        if step is not None:
            truncate_metrics(run_dir / "metrics.csv", step)
        write_text_atomic(run_dir / "config.yaml", to_yaml(cfg))
    t0 = time.perf_counter()
    with signals.deferred():
        trainer.fit(module, ckpt_path=ckpt_path)
    train_seconds = time.perf_counter() - t0
    if not trainer.is_global_zero:
        return {}
    steps = trainer.global_step
    results: dict[str, Any] = {
        "name": cfg.name,
        "method": method_label(cfg),
        "backbone": backbone_label(cfg),
        "data": cfg.data.name,
        "seed": cfg.seed,
        "epochs": trainer.current_epoch,
        "steps": steps,
        "train_seconds": train_seconds,
        "resumed": ckpt_path is not None,
    }
    logged = trainer.callback_metrics
    for name, value in logged.items():
        if name.startswith("epoch/"):
            key = name.removeprefix("epoch/")
            results[f"train_{key}"] = 100 * float(value) if key.endswith("acc") else float(value)
    if cfg.eval.at_end:
        if data is None:  # the shards decoded at the training size, for the frozen probes
            data = timed_load(
                OmegaConf.merge(cfg.data, {"path": str(shards), "size": stream_size(cfg)})
            )
        results.update(evaluate_method(method, data, cfg, module.device, run_dir))
    write_json(run_dir / "results.json", results)
    log_run(trainer.loggers, cfg, results)
    return results


def load_state_dict(ckpt: str | Path) -> dict[str, torch.Tensor]:
    """The model weights of a checkpoint, with one clear error for a missing or bad file."""
    path = Path(ckpt)
    state = read_checkpoint(path, "state_dict")["state_dict"]
    bad = nonfinite_names(state)
    if bad:
        raise UserError(
            f"checkpoint {path} holds non-finite weights ({describe_nonfinite(bad)}); "
            "it cannot be evaluated: retrain with a lower optim.lr"
        )
    return state


def evaluate_checkpoint(
    cfg: DictConfig, ckpt: str | Path, out: str = "eval.json"
) -> dict[str, Any]:
    """Evaluate the backbone of a checkpoint on cfg.data; writes `out` (eval.json) beside it,
    and the evaluation's figures."""
    _set_threads(cfg)
    check_accelerator(cfg)
    check_file_writable(Path(ckpt).parent / out, "evaluation results")
    state = load_state_dict(ckpt)
    data = timed_load(cfg.data)
    # The online classifier is not evaluated; skipping it lets a backbone be probed on other data.
    method_state = upgrade_state(
        {
            k.removeprefix("method."): v
            for k, v in state.items()
            if k.startswith("method.") and not k.startswith("method.classifier.")
        }
    )
    ones = torch.ones(
        data.channels
    )  # placeholder stats: the checkpoint's mean/std buffers load over them
    method = method_for(cfg, data, ones * 0, ones)
    try:
        missing, unexpected = method.load_state_dict(method_state, strict=False)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise UserError(
            f"checkpoint {ckpt} does not match the configured model: {detail}"
        ) from None
    missing = [k for k in missing if not k.startswith("classifier.")]
    if missing or unexpected:
        raise UserError(
            f"checkpoint {ckpt} does not match the configured model: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    device = torch.device("cuda" if uses_cuda(cfg) else "cpu")
    results = {
        "checkpoint": str(ckpt),
        "name": cfg.name,
        "method": method_label(cfg),
        "seed": cfg.seed,
        "data": cfg.data.name,
        **evaluate_method(method, data, cfg, device, Path(ckpt).parent),
    }
    # The online classifier is not loaded (above): its accuracy here would be a random one's.
    results.pop("online_acc", None)
    write_json(Path(ckpt).parent / out, results)
    return results
