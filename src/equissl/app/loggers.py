"""Where a run's metrics go besides metrics.csv: `trainer.logger=tensorboard|csv|wandb|mlflow`.

metrics.csv is always written (reports and resumed runs read it); the chosen logger is added
beside it (`csv`: none). At the end of a run every logger gets the resolved configuration,
flattened (`optim.lr`, ...), as hyperparameters and the run's results as final metrics, so
TensorBoard's HPARAMS tab, a W&B run's summary and an MLflow run's metrics compare runs.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from equissl.app.progress import NOT_METRICS
from equissl.errors import ConfigError

LOGGERS = ("tensorboard", "csv", "wandb", "mlflow")
# The package each optional logger needs, and the extra that installs it.
PACKAGES = {"wandb": ("wandb", "wandb"), "mlflow": ("mlflow", "mlflow")}


def check_logger(name: str) -> None:
    """One line (exit 2) for an unknown logger or one whose package is not installed; called
    before a run writes anything."""
    if name not in LOGGERS:
        raise ConfigError(f"trainer.logger={name} is not one of {', '.join(LOGGERS)}")
    if name in PACKAGES:
        module, extra = PACKAGES[name]
        try:
            importlib.import_module(module)
        except ImportError:
            raise ConfigError(
                f"trainer.logger={name} needs the {module} package: "
                f"pip install 'equissl[{extra}]' (or pick tensorboard or csv)"
            ) from None


def extra_loggers(cfg: DictConfig, run_dir: Path) -> list[Logger]:
    """The logger `trainer.logger` names, beside metrics.csv: TensorBoard events in `tb/`, a
    W&B run (its files in the run folder; WANDB_MODE=offline works without a network), or an
    MLflow run (MLFLOW_TRACKING_URI, else `file:` `<out_dir>/mlruns`)."""
    t = cfg.trainer
    check_logger(t.logger)
    if t.logger == "tensorboard":
        return [
            TensorBoardLogger(save_dir=str(run_dir), name="tb", version="", default_hp_metric=False)
        ]
    if t.logger == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        return [WandbLogger(name=cfg.name, project=t.project, save_dir=str(run_dir))]
    if t.logger == "mlflow":
        return [mlflow_logger(cfg, run_dir)]
    return []


def mlflow_logger(cfg: DictConfig, run_dir: Path) -> Logger:
    """An MLflow run at MLFLOW_TRACKING_URI, else in the folder `<out_dir>/mlruns` (MLflow 3
    keeps its `file:` store only when MLFLOW_ALLOW_FILE_STORE is set: it is, for `file:` URIs);
    a tracking store that cannot be reached stops with one line before training."""
    from lightning.pytorch.loggers import MLFlowLogger

    uri = os.environ.get("MLFLOW_TRACKING_URI") or (run_dir.parent / "mlruns").resolve().as_uri()
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

    class RunMLFlowLogger(MLFlowLogger):
        # Lightning's `epoch` counter is renamed: MLflow's file store keeps a metric `a/b` in
        # the folder `a`, which a metric `epoch` (a file) beside `epoch/loss` would block.
        def log_metrics(self, metrics: dict, step: int | None = None) -> None:
            if "epoch" in metrics:
                metrics = {("trainer/epoch" if k == "epoch" else k): v for k, v in metrics.items()}
            super().log_metrics(metrics, step)

    try:
        logger = RunMLFlowLogger(
            experiment_name=cfg.trainer.project, run_name=cfg.name, tracking_uri=uri
        )
        logger.experiment  # noqa: B018 - connects and creates the run now, not mid-training
    except Exception as exc:  # any failure of the tracking store: one line, exit 2
        detail = " ".join(str(exc).split())[:200]
        raise ConfigError(f"cannot start an MLflow run at {uri}: {detail}") from None
    return logger


def flat_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved configuration as `section.key: value`, lists and None as text (what every
    tracker accepts as a hyperparameter)."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        elif isinstance(node, (bool, int, float, str)):
            out[prefix[:-1]] = node
        else:
            out[prefix[:-1]] = str(node)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


def final_metrics(results: dict[str, Any]) -> dict[str, float]:
    """The numbers of a run's results (nested parts as `part.key`), as `final/<key>`."""
    out: dict[str, float] = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and (prefix or key not in NOT_METRICS)
            ):
                out[f"final/{prefix}{key}"] = float(value)

    walk(results, "")
    return out


def log_run(loggers: list[Logger], cfg: DictConfig, results: dict[str, Any]) -> None:
    """Hand every tracker (not metrics.csv, which config.yaml and results.json complete) the
    configuration as hyperparameters and the results as final metrics, then close its run."""
    from lightning.pytorch.loggers import WandbLogger

    params, metrics = flat_config(cfg), final_metrics(results)
    for logger in loggers:
        if isinstance(logger, CSVLogger):
            continue
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, metrics=metrics)  # fills the HPARAMS tab
        else:
            logger.log_hyperparams(params)
            logger.log_metrics(metrics, step=int(results.get("steps", 0)))
        logger.save()
        logger.finalize("success")
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(metrics)  # the numbers W&B's run tables show
            logger.experiment.finish()  # the next run of a sweep gets a run of its own
