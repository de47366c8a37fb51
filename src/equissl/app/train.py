"""The LightningModule of pretraining and the Trainer set-up.

The uint8 training set stays on the device; a batch is a row of indices of the epoch's
permutation, and the step is `equissl.step`'s, with its seed rule: a resumed run repeats an
uninterrupted one exactly.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import lightning as L
import torch
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from omegaconf import DictConfig, OmegaConf

from equissl.app import signals
from equissl.app.loggers import extra_loggers
from equissl.app.progress import progress_callbacks
from equissl.data import place_on_device
from equissl.data.stream import ShardStream, StreamLoader
from equissl.errors import ConfigError, NonFiniteLossError, UserError
from equissl.finite import any_nonfinite, describe_nonfinite, module_nonfinite
from equissl.methods import Method
from equissl.methods.hostcrops import HostCropLoss
from equissl.optim import build_optimizer, constant, param_groups, schedule_factor
from equissl.reports.atomic import write_text_atomic
from equissl.step import epoch_rows, step_generator, step_loss


def to_channels_last(module: torch.nn.Module) -> None:
    """channels_last for every 4-D parameter (conv filters); other ranks (an EqResNet's 5-D
    free filter parameters, which it expands per step) stay as they are."""
    for p in module.parameters():
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)


# The backbone entry points a training step calls: the invariance branch and `predict` terms
# read `orientation_features`, CARE terms and evaluation `forward`.
COMPILED = ("forward", "orientation_features")


def compile_backbone(backbone: torch.nn.Module) -> None:
    """torch.compile the backbone's entry points in place, as instance attributes: no wrapper
    module, so state-dict keys (checkpoints, `equissl eval`, export) stay those of the plain
    model. (`nn.Module.compile()` would only compile `__call__`, which the step bypasses.)"""
    for name in COMPILED:
        setattr(backbone, name, torch.compile(getattr(backbone, name)))


def uncompile_backbone(backbone: torch.nn.Module) -> None:
    """Undo `compile_backbone` (evaluation's varying batch shapes would recompile)."""
    for name in COMPILED:
        backbone.__dict__.pop(name, None)


# oneDNN 3.12 (torch 2.13's CPU build) corrupts the heap in the backward of a 1x1 stride-2 conv
# in channels_last with fewer than 16 input channels ("free(): invalid next size", a segfault):
# 4 and 8 channels from 64 px, 12 from 128 px; 16 and more gave gradients equal to contiguous.
MIN_CPU_CHANNELS_LAST = 16


def channels_last_safe(backbone: torch.nn.Module, device: torch.device) -> bool:
    """Whether `backbone` may train in channels_last on `device`: not on the CPU where a strided
    1x1 conv has under MIN_CPU_CHANNELS_LAST inputs (the oneDNN bug above)."""
    return device.type == "cuda" or all(
        m.in_channels >= MIN_CPU_CHANNELS_LAST
        for m in backbone.modules()
        if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1)
    )


def channels_last_pays(backbone: torch.nn.Module, device: torch.device) -> bool:
    """Whether channels_last is the faster, and safe, layout for `backbone` on `device`: on a
    GPU always; on the CPU for a backbone with 4-D conv filters (a plain ResNet from width 16:
    its step ran 1.25-1.4x faster, docs/results/cpu-layout.md), not for an EqResNet, whose 5-D
    free filters are expanded into contiguous ones every step (no faster, at times slower)."""
    if device.type == "cpu" and any(p.dim() > 4 for p in backbone.parameters()):
        return False
    return channels_last_safe(backbone, device)


def prepare_method(method: Method, cfg: DictConfig, device: torch.device) -> None:
    """The fast path of a method on its training device: channels_last filters and views
    (`trainer.channels_last`, where that layout pays), and a compiled backbone with
    `trainer.compile`."""
    method.channels_last = cfg.trainer.channels_last and channels_last_pays(method.backbone, device)
    if method.channels_last:
        to_channels_last(method)
    if cfg.trainer.compile:
        compile_backbone(method.backbone)


def training_optimizer(cfg: DictConfig, method: Method) -> torch.optim.Optimizer:
    """The configured optimiser over the method's parameter groups, at the base learning rate
    `optim.lr x optim.batch_size / 256` (the schedule scales it per step)."""
    o = cfg.optim
    lr = o.lr * o.batch_size / 256
    shared = cfg.method.classifier_optim == "shared"
    groups = param_groups(
        method,
        method.classifier,
        lr=lr,
        weight_decay=o.weight_decay,
        classifier_lr=lr if shared else o.classifier_lr,
        classifier_weight_decay=o.weight_decay if shared else 0.0,
        bias_lr=o.bias_lr * o.batch_size / 256 if o.bias_lr else None,
        fixed=getattr(method.invariance, "predictor", None) if o.fixed_predictor_lr else None,
    )
    return build_optimizer(o.name, groups, momentum=o.momentum, eta=o.lars_eta, nesterov=o.nesterov)


def lr_factor(cfg: DictConfig, steps_per_epoch: int):
    """The configured schedule: step -> the factor of each group's base learning rate."""
    o = cfg.optim
    return schedule_factor(
        o.schedule,
        steps_per_epoch=steps_per_epoch,
        epochs=o.epochs,
        warmup_epochs=o.warmup_epochs,
        end=o.end_lr,
        milestones=list(o.milestones),
        gamma=o.gamma,
    )


class StreamSource(NamedTuple):
    """A streamed training set: the shard folder, the method's loss on host crops (its `specs`:
    the crops each sample gives), the DataLoader workers and the channels of the crops."""

    folder: Path
    loss: HostCropLoss
    workers: int
    channels: int


class PretrainModule(L.LightningModule):
    """Pretraining on the resident uint8 `images` and `labels`, or, with `stream`, on batches of
    host crops read from shards (`images` and `labels` None)."""

    def __init__(
        self,
        cfg: DictConfig,
        method: Method,
        images: torch.Tensor | None,
        labels: torch.Tensor | None,
        stream: StreamSource | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.method = method
        self.images = images  # uint8 (N, C, H, W); not a buffer: never saved in checkpoints
        self.labels = labels
        self.stream, self._stream_set = stream, None
        self.nonfinite = torch.zeros((), dtype=torch.bool)
        self._epoch_sums: dict[str, torch.Tensor] = {}  # epoch metrics, summed on the device
        self._epoch_steps = 0

    # -- batches ---------------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        if self.stream is not None:
            return len(self.stream_set())
        return self.images.shape[0] // self.cfg.optim.batch_size

    def stream_set(self) -> ShardStream:
        """This process's shard stream (rank and world known once the Trainer is attached)."""
        if self._stream_set is None:
            s, world = self.stream, self.trainer.world_size
            self._stream_set = ShardStream(
                s.folder,
                s.loss.specs,
                batch_size=self.cfg.optim.batch_size // world,
                seed=self.cfg.seed,
                rank=self.trainer.global_rank,
                world=world,
                slots=s.workers,
                channels=s.channels,
            )
        return self._stream_set

    def on_fit_start(self) -> None:
        world = self.trainer.world_size
        if self.cfg.optim.batch_size % world:
            raise ConfigError(
                f"optim.batch_size={self.cfg.optim.batch_size} does not split evenly over "
                f"{world} processes; use a multiple of {world}"
            )
        device = self.device
        if self.stream is None:
            self.images = place_on_device(self.images, device, self.cfg.data.device_resident)
            self.labels = self.labels.to(self.images.device)  # gathered with the images' rows
        self.nonfinite = self.nonfinite.to(device)
        prepare_method(self.method, self.cfg, device)

    def on_train_start(self) -> None:
        signals.reclaim()  # after Lightning has put in its SIGTERM handler

    def on_fit_end(self) -> None:
        uncompile_backbone(self.method.backbone)

    def on_train_epoch_start(self) -> None:
        self._epoch_sums, self._epoch_steps = {}, 0

    def epoch_rows(self) -> torch.Tensor:
        """This process's batch rows of the epoch the next step belongs to, from that step on
        (a run resumed mid-epoch continues where it stopped), on the images' device. The epoch
        comes from the global step: after a resume Lightning's epoch counter can lag a step."""
        epoch, start = divmod(self.global_step, self.steps_per_epoch())
        rows = epoch_rows(
            self.images.shape[0],
            self.cfg.optim.batch_size,
            seed=self.cfg.seed,
            epoch=epoch,
            world=self.trainer.world_size,
            rank=self.trainer.global_rank,
        )
        return rows[start:].to(self.images.device)

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        if self.stream is not None:  # host crops, labels and indices (ShardStream)
            return super().transfer_batch_to_device(batch, device, dataloader_idx)
        return batch  # the rows already live with the images (on the CPU when not resident)

    # -- training --------------------------------------------------------------------------
    def training_step(self, rows, batch_idx: int) -> torch.Tensor:
        if self.stream is not None:  # rows: a batch dict of host crops (ShardStream)
            generator = step_generator(
                self.cfg.seed, self.global_step, self.trainer.global_rank, self.device
            )
            loss, metrics = self.stream.loss(rows["crops"], rows["labels"], generator)
            rows = rows["labels"]
        else:
            loss, metrics = step_loss(
                self.method.loss,
                self.images,
                self.labels,
                rows,
                seed=self.cfg.seed,
                step=self.global_step,
                rank=self.trainer.global_rank,
                device=self.device,
            )
        self.nonfinite = self.nonfinite | ~torch.isfinite(loss.detach())
        # Epoch means accumulate on the device (logged once, at the epoch end); step values go
        # through Lightning's logging, whose per-call cost is host time, only on the steps it
        # writes (every trainer.log_every_n_steps).
        for key, value in metrics.items():
            if key == "loss" or key.endswith("_acc"):
                total = self._epoch_sums.get(key)
                self._epoch_sums[key] = value.float() if total is None else total + value
        self._epoch_steps += 1
        if self._writes_step_metrics():
            # Filled on the device: a tensor made on the host would be copied over (a sync).
            lr = self.trainer.optimizers[0].param_groups[0]["lr"]
            metrics["lr"] = torch.full((), lr, device=self.device)
            self.log_dict(
                {f"train/{k}": v for k, v in metrics.items()},
                on_step=True,
                on_epoch=False,
                prog_bar=False,
                batch_size=rows.shape[0],
            )
        return loss

    def _writes_step_metrics(self) -> bool:
        """Whether Lightning writes this step's logged values (else logging them costs host
        time for nothing); True where this Lightning version does not say."""
        connector = getattr(self.trainer, "_logger_connector", None)
        return bool(getattr(connector, "should_update_logs", True))

    def on_train_epoch_end(self) -> None:
        for key, total in self._epoch_sums.items():
            self.log(
                f"epoch/{key}",
                total / max(self._epoch_steps, 1),
                on_step=False,
                on_epoch=True,
                prog_bar=key in ("loss", "online_acc"),
                sync_dist=True,
            )

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        total = max(self.cfg.optim.epochs * self.steps_per_epoch(), 1)
        self.method.after_step(self.global_step / total)
        # Here, after every update of the step (callbacks run before this hook), a held
        # SIGTERM/SIGINT writes a mid-epoch checkpoint that resumes exactly, then stops.
        signum = stop_requested(self.trainer)
        if signum is not None:
            signals.clear()
            flush_step_metrics(self.trainer)  # Lightning would write them after this hook
            path = write_checkpoint(self.trainer, Path(self.trainer.default_root_dir))
            raise signals.Stop(signum, f"at step {self.global_step}; {path} holds it")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["equissl_config"] = OmegaConf.to_container(self.cfg, resolve=True)
        # The running epoch means, so a run resumed mid-epoch logs the same epoch values.
        checkpoint["equissl_epoch_sums"] = {k: v.cpu() for k, v in self._epoch_sums.items()}
        checkpoint["equissl_epoch_steps"] = self._epoch_steps

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        sums = checkpoint.get("equissl_epoch_sums", {})
        self._epoch_sums = {k: v.to(self.device) for k, v in sums.items()}
        self._epoch_steps = int(checkpoint.get("equissl_epoch_steps", 0))

    def configure_optimizers(self):
        optimizer = training_optimizer(self.cfg, self.method)
        factor = lr_factor(self.cfg, self.steps_per_epoch())
        # A `fixed` group (SimSiam's predictor with --fix-pred-lr) keeps its base lr.
        factors = [constant if g.get("fixed") else factor for g in optimizer.param_groups]
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def train_dataloader(self):
        if self.stream is not None:  # a batch: host crops of the epoch's next step
            position = lambda: divmod(self.global_step, self.steps_per_epoch())  # noqa: E731
            return StreamLoader(self.stream_set(), self.stream.workers, position)
        # A batch is a row of the epoch's permutation: the indices of its images.
        return EpochRows(self.epoch_rows, self.steps_per_epoch())


class EpochRows:
    """The batches of an epoch, `len` of them: the rows `draw()` gives when a pass starts (all
    of the epoch's, or the rest of them in a run resumed mid-epoch)."""

    def __init__(self, draw: Callable[[], torch.Tensor], steps: int) -> None:
        self.draw, self.steps = draw, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        return iter(self.draw())

    # Resumable in Lightning's sense: the start comes from the restored global step, so the
    # checkpoint needs no state of the loader's own.
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def flush_step_metrics(trainer: L.Trainer) -> None:
    """Write this step's logged values now, as Lightning does right after `on_train_batch_end`
    (a run stopped in that hook would otherwise lose them)."""
    connector = trainer._logger_connector
    connector.on_batch_end()
    connector.update_train_step_metrics()
    for logger in trainer.loggers:
        logger.save()


def stop_requested(trainer: L.Trainer) -> int | None:
    """The held signal, agreed by every process (any one that holds one stops all)."""
    signum = signals.pending()
    if trainer.world_size > 1:  # one collective per step, as Lightning's own SIGTERM check
        any_held = trainer.strategy.reduce_boolean_decision(signum is not None, all=False)
        if any_held and signum is None:
            signum = int(signals.signal.SIGTERM)
    return signum


# -- callbacks ---------------------------------------------------------------------------------
def nonfinite_error(trainer: L.Trainer, what: str) -> NonFiniteLossError:
    """One line: what diverged, when, the fix, and what is left on disk."""
    last = Path(trainer.default_root_dir) / "last.ckpt"
    kept = (
        "last.ckpt keeps the last good epoch"
        if last.is_file()
        else "no checkpoint was written (it diverged in the first epoch)"
    )
    return NonFiniteLossError(
        f"{what} became NaN or infinite by step {trainer.global_step}; lower optim.lr or use "
        f"trainer.precision=32; {kept}"
    )


class NonFiniteGuard(Callback):
    """Stops on a NaN/inf loss before the next checkpoint, so last.ckpt stays the last good one."""

    def __init__(self, every_n_steps: int) -> None:
        self.every = max(every_n_steps, 1)

    def _check(self, trainer: L.Trainer, module: PretrainModule) -> None:
        # The loss, then the weights and buffers (BatchNorm statistics can overflow while the
        # loss stays finite). Every process decides together, so none waits in a collective.
        bad = bool(module.nonfinite | any_nonfinite(module.method))  # one host sync
        if trainer.strategy.reduce_boolean_decision(bad, all=False):
            raise nonfinite_error(trainer, "the loss or the weights")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every == 0:
            self._check(trainer, module)

    def on_train_epoch_end(self, trainer, module) -> None:
        self._check(trainer, module)


STALE_TEMPS = (".last.ckpt.*.tmp", ".metrics.csv.*.tmp")  # what a killed run may leave


def remove_stale_temps(run_dir: Path) -> None:
    """Delete the temporary files a killed run left in its folder (the checkpoint or metrics
    being written when SIGKILL came); called while the run folder's lock is held."""
    for pattern in STALE_TEMPS:
        for path in run_dir.glob(pattern):
            path.unlink(missing_ok=True)


def write_checkpoint(trainer: L.Trainer, run_dir: Path) -> Path:
    """Write `run_dir/last.ckpt` whole, or not at all: the model is checked for non-finite
    weights, then the checkpoint goes to a temporary file in the run folder (never the system
    temp folder, where a kill would leak it), is flushed to disk and renamed over the old one.
    A failed write (a full disk) removes the temporary file and keeps the previous checkpoint."""
    path = run_dir / "last.ckpt"
    bad = module_nonfinite(trainer.lightning_module)
    if trainer.strategy.reduce_boolean_decision(bool(bad), all=False):
        raise nonfinite_error(trainer, f"the weights ({describe_nonfinite(bad)})")
    checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
    if trainer.is_global_zero:
        tmp = path.with_name(f".last.ckpt.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise UserError(
                f"cannot write {path}: {exc.strerror or exc}; free space or pass out_dir=...; "
                "the previous last.ckpt is kept"
            ) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    trainer.strategy.barrier()
    return path


class LastCheckpoint(Callback):
    """Writes `last.ckpt` at every epoch end (see write_checkpoint)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def on_train_epoch_end(self, trainer, module) -> None:
        write_checkpoint(trainer, self.run_dir)


# -- logging -----------------------------------------------------------------------------------
class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, but a resumed run appends to metrics.csv instead of deleting it,
    and a kill at any moment leaves whole rows: the file is rewritten (when new columns appear,
    as at the first epoch end) to a temporary file that replaces it, and a row cut short by a
    kill during an append is dropped when the run resumes."""

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if path.is_file():
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):  # an append cut short: drop the partial row
                with open(path, "r+b") as f:
                    f.truncate(data.rfind(b"\n") + 1)
            with open(path, newline="") as f:
                self.metrics_keys = next(csv.reader(f), [])

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        path = Path(self.metrics_file_path)
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fieldnames)
                writer.writeheader()
                writer.writerows(rows)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


class RunCSVLogger(CSVLogger):
    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop rows logged after the checkpoint we resume from (they are about to be redone)."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames or [], list(reader)
    keep = [
        r for r in rows if r.get("step") not in (None, "") and int(float(r["step"])) < last_step
    ]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    writer.writerows(keep)
    write_text_atomic(path, out.getvalue())


def uses_cuda(cfg: DictConfig) -> bool:
    """Whether a run on this machine trains on a CUDA device."""
    return torch.cuda.is_available() and cfg.trainer.accelerator != "cpu"


def resolve_precision(cfg: DictConfig) -> str:
    if cfg.trainer.precision != "auto":
        return "32-true" if str(cfg.trainer.precision) == "32" else cfg.trainer.precision
    return "bf16-mixed" if uses_cuda(cfg) else "32-true"


def build_trainer(cfg: DictConfig, run_dir: Path, *, callbacks: list[Callback] = ()) -> L.Trainer:
    """A Trainer for a pretraining run writing into run_dir (metrics.csv, tb/, last.ckpt)."""
    t = cfg.trainer
    loggers = [
        # Rows reach metrics.csv as they are logged, so a killed run keeps every row up to its
        # checkpoint (resume drops the later ones and logs them again).
        RunCSVLogger(
            save_dir=str(run_dir.parent),
            name=run_dir.name,
            version="",
            flush_logs_every_n_steps=1,
        ),
        *extra_loggers(cfg, run_dir),  # trainer.logger: TensorBoard, W&B or MLflow
    ]
    extra, bar = progress_callbacks(t.progress_bar, max(t.log_every_n_steps // 2, 1))
    strategy = t.strategy
    if strategy == "ddp" and not torch.cuda.is_available():
        from lightning.pytorch.strategies import DDPStrategy

        strategy = DDPStrategy(process_group_backend="gloo")
    try:
        return L.Trainer(
            accelerator="cpu"
            if t.accelerator == "cpu"
            else ("gpu" if t.accelerator in ("gpu", "cuda") else t.accelerator),
            devices=t.devices,
            num_nodes=t.num_nodes,
            strategy=strategy,
            precision=resolve_precision(cfg),
            max_epochs=cfg.optim.epochs,
            logger=loggers,
            callbacks=[
                NonFiniteGuard(t.log_every_n_steps),
                LastCheckpoint(run_dir),
                *callbacks,
                *extra,
            ],
            enable_checkpointing=False,
            enable_progress_bar=bar,
            enable_model_summary=False,
            log_every_n_steps=t.log_every_n_steps,
            num_sanity_val_steps=0,
            use_distributed_sampler=False,
            sync_batchnorm=t.sync_batchnorm,
            deterministic=False,
            benchmark=uses_cuda(cfg),  # cuDNN picks the fastest kernels for the fixed shapes
            default_root_dir=str(run_dir),
        )
    except (MisconfigurationException, ValueError, RuntimeError) as exc:
        raise ConfigError(f"cannot set up training: {' '.join(str(exc).split())[:300]}") from None
