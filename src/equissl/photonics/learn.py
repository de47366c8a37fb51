"""DOS regression: the encoder, SimCLR / E-SimCLR pretraining, fine-tuning and the metric.

Plain PyTorch loops, batched on one device: the whole dataset is a tensor there, a step (the
step and seed rule of `equissl.step`) gathers a batch by index and augments it with the batched
operations of `photonics.augment`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from equissl.errors import NonFiniteLossError
from equissl.models import build_backbone, projector, transformation_head
from equissl.objectives import nt_xent, prediction_loss
from equissl.photonics.augment import equivariance_transform, invariance_augment, normalise
from equissl.step import epoch_permutation, epoch_rows, step_loss, update

Log = Callable[[str], None]
ARCHS = ("cnn", "resnet18")
POOLS = ("flatten", "avg")


@dataclass(frozen=True)
class PretrainSettings:
    """What `pretrain` reads (named as the keys of `equissl photonics run`)."""

    seed: int
    arch: str  # one of ARCHS
    width: int
    pool: str  # one of POOLS
    pretrain_epochs: int
    pretrain_batch: int
    pretrain_lr: float
    weight_decay: float
    temperature: float  # NT-Xent
    proj_hidden: int
    proj_dim: int
    eq_weight: float  # E-SimCLR: weight of the transformation-prediction loss
    eq_mode: str  # relative | predict
    head_hidden: int


@dataclass(frozen=True)
class FinetuneSettings:
    """What `finetune` reads (named as the keys of `equissl photonics run`)."""

    arch: str
    width: int
    pool: str
    finetune_epochs: int
    finetune_batch: int
    finetune_lr: float
    weight_decay: float
    reg_hidden: int
    finetune_augment: bool
    skip: int  # lowest DOS grid points left out of the error


class CellNet(nn.Module):
    """A small CNN for `size` x `size` cells: `blocks` x (3x3 conv, BN, ReLU, 2x2 max-pool)
    with width, 2 width, 4 width, ... channels, then the final map pooled to one vector.

    `pool="flatten"` keeps the final map's positions (the 2 x 2 map of a 32 x 32 cell flattened,
    like the fully connected layers of the CNNs of SIB-CL and E-SSL), so a half-cell translation
    moves features between positions; `pool="avg"` averages them away. Zero padding, not
    circular: the network sees where the cell's edges are (with circular padding, four 2x2
    pools and averaging, a half-cell translation would be exactly invisible).
    """

    def __init__(
        self, width: int = 16, blocks: int = 4, in_channels: int = 1, size: int = 32,
        pool: str = "avg",
    ) -> None:  # fmt: skip
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(blocks):
            out = width * 2**i
            layers += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels = out
        side = size // 2**blocks
        if pool == "avg" or side < 1:
            layers.append(nn.AdaptiveAvgPool2d(1))
            side = 1
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.num_features = channels * side * side

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


def build_encoder(arch: str, width: int, pool: str = "avg", size: int = 32) -> nn.Module:
    """`cnn` (CellNet) or `resnet18` (the repository's ResNet-18, CIFAR stem, one channel,
    global average pooling)."""
    if arch == "cnn":
        return CellNet(width, size=size, pool=pool)
    return build_backbone("resnet18", width=width, in_channels=1)


def regression_head(in_dim: int, hidden: int, n_freq: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, n_freq)
    )


def relative_l1(pred: Tensor, target: Tensor, empty: Tensor, skip: int = 0) -> Tensor:
    """Relative L1 error of each cell's DOS, (n,) float64.

    pred, target: (n, n_freq) predicted and true DOS - empty-lattice DOS; empty: (n_freq,) the
    empty-lattice DOS. Over the frequencies j >= skip:

        error = sum_j |pred_j - target_j| / sum_j |target_j + empty_j|

    The numerator is the same for the DOS and for DOS - empty lattice; the denominator is the
    full DOS (positive), not the residual, whose sum can come near zero.
    """
    pred, target = pred.double(), target.double()
    full = target + empty.to(target)
    return (pred - target)[:, skip:].abs().sum(1) / full[:, skip:].abs().sum(1)


def _optimizer(params: list[Tensor], lr: float, weight_decay: float, steps: int):
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, steps) / max(1, steps)))
    )
    return opt, sched


def _check_finite(loss: Tensor, what: str) -> None:
    if not torch.isfinite(loss):
        raise NonFiniteLossError(f"{what} loss is {float(loss)}; lower the learning rate")


def pretrain(
    method: str,
    cells: Tensor,
    family: str,
    settings: PretrainSettings,
    device: torch.device,
    log: Log,
) -> tuple[nn.Module, dict]:
    """SimCLR (method "simclr") or E-SimCLR ("esimclr") on unlabelled cells (U, S, S).

    Two views per cell by the family's invariance augmentation; NT-Xent on their projections.
    E-SimCLR adds, with weight settings.eq_weight, the cross-entropy of predicting the label r of
    the family's transformation g_r applied to the first view: from the features of
    the pair, f(g_r view) - f(view) (eq_mode "relative"), or of g_r view alone ("predict").
    The difference, not the concatenation, of the pair: with concatenated features the blob and
    pm tasks stayed at chance for 300 steps, with their difference they pass 90 % (blob) and
    75 % (pm) within 80-120 steps (a 128-d head input that is exactly 0 for the identity).
    Returns the encoder and {seconds, loss, transform_acc}.
    """
    start = time.perf_counter()
    torch.manual_seed(settings.seed)
    size = cells.shape[-1]
    encoder = build_encoder(settings.arch, settings.width, settings.pool, size).to(device)
    dim = encoder.num_features
    proj = projector(dim, settings.proj_hidden, settings.proj_dim).to(device)
    modules: list[nn.Module] = [encoder, proj]
    eq = equivariance_transform(family, size) if method == "esimclr" else None
    relative = settings.eq_mode == "relative"
    if eq is not None:
        head = transformation_head(dim, settings.head_hidden, eq.num_labels)
        modules.append(head.to(device))
    x_all = normalise(cells).to(device)
    batch = min(settings.pretrain_batch, x_all.shape[0])
    steps = x_all.shape[0] // batch
    params = [p for m in modules for p in m.parameters()]
    opt, sched = _optimizer(
        params, settings.pretrain_lr, settings.weight_decay, steps * settings.pretrain_epochs
    )
    augment = invariance_augment(family, size)

    def pair_loss(x: Tensor, _: None, generator: torch.Generator) -> tuple[Tensor, dict]:
        views = [augment(x, generator), augment(x, generator)]
        if eq is not None:
            labels = eq.sample(batch, generator, device)
            views.append(eq.apply(views[0], labels))
        h = encoder(torch.cat(views)).split(batch)
        loss = nt_xent(proj(h[0]), proj(h[1]), settings.temperature)
        acc = torch.zeros((), device=device)
        if eq is not None:
            feats = h[2] - h[0] if relative else h[2]
            ce, acc = prediction_loss(head(feats), labels)
            loss = loss + settings.eq_weight * ce
        return loss, {"transform_acc": acc}

    stats: dict = {}
    for epoch in range(settings.pretrain_epochs):
        totals = torch.zeros(2, device=device)
        rows = epoch_rows(x_all.shape[0], batch, seed=settings.seed, epoch=epoch).to(device)
        for i, idx in enumerate(rows):
            step = epoch * steps + i
            loss, metrics = step_loss(pair_loss, x_all, None, idx, seed=settings.seed, step=step)
            update(loss, opt, sched)
            totals += torch.stack([loss.detach(), metrics["transform_acc"]])
        mean_loss, mean_acc = (totals / steps).tolist()
        _check_finite(torch.tensor(mean_loss), f"{method} pretraining")
        stats = {"loss": mean_loss, "transform_acc": mean_acc if eq is not None else None}
        acc_text = f" transform acc {mean_acc:.2f}" if eq is not None else ""
        log(
            f"  {method} pretraining epoch {epoch + 1}/{settings.pretrain_epochs}: "
            f"loss {mean_loss:.3f}{acc_text} ({time.perf_counter() - start:.0f} s)"
        )
    stats["seconds"] = time.perf_counter() - start
    return encoder, stats


@dataclass
class Split:
    cells: Tensor  # (n, S, S)
    dos: Tensor  # (n, n_freq): DOS - empty-lattice DOS


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch: int = 512) -> Tensor:
    """Model outputs for inputs x, in eval mode, in batches."""
    model.eval()
    out = torch.cat([model(chunk) for chunk in x.split(batch)]) if len(x) else x.new_zeros(0)
    model.train()
    return out


def finetune(
    encoder_state: dict | None,
    train: Split,
    val: Split,
    test: Split,
    family: str,
    settings: FinetuneSettings,
    seed: int,
    empty: Tensor,
    device: torch.device,
) -> dict:
    """Train encoder (from `encoder_state`, or random) + regression head with MSE on the
    standardised DOS target; keep the epoch with the lowest validation error; test it.

    Target standardisation: (dos - mean) / scale with the train split's per-frequency mean and
    overall standard deviation. Returns errors and predictions (denormalised, on the CPU).
    """
    start = time.perf_counter()
    torch.manual_seed(seed)
    encoder = build_encoder(settings.arch, settings.width, settings.pool, train.cells.shape[-1])
    if encoder_state is not None:
        encoder.load_state_dict(encoder_state)
    n_freq = train.dos.shape[1]
    model = nn.Sequential(
        encoder, regression_head(encoder.num_features, settings.reg_hidden, n_freq)
    )
    model = model.to(device)
    mean = train.dos.mean(0).to(device)
    scale = train.dos.std().clamp(min=1e-8).to(device)
    x_train, y_train = normalise(train.cells).to(device), (train.dos.to(device) - mean) / scale
    x_val, x_test = normalise(val.cells).to(device), normalise(test.cells).to(device)
    y_val = val.dos.to(device)
    empty = empty.to(device)
    n = x_train.shape[0]
    batch = min(settings.finetune_batch, n)
    steps = math.ceil(n / batch)
    opt, sched = _optimizer(
        list(model.parameters()),
        settings.finetune_lr,
        settings.weight_decay,
        steps * settings.finetune_epochs,
    )
    augment = invariance_augment(family, train.cells.shape[-1])

    def regression_loss(x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, dict]:
        if settings.finetune_augment:
            x = augment(x, generator)
        return F.mse_loss(model(x), y), {}

    best = (math.inf, -1, None)
    curve = []
    for epoch in range(settings.finetune_epochs):
        # Every sample, the last batch short (a pretraining epoch drops the remainder).
        perm = epoch_permutation(n, seed=seed, epoch=epoch).to(device)
        for i, idx in enumerate(perm.split(batch)):
            if idx.numel() < 2:  # batch norm needs two samples
                continue
            step = epoch * steps + i
            loss, _ = step_loss(regression_loss, x_train, y_train, idx, seed=seed, step=step)
            update(loss, opt, sched)
        _check_finite(loss.detach(), "fine-tuning")
        val_pred = predict(model, x_val) * scale + mean
        val_error = float(relative_l1(val_pred, y_val, empty, settings.skip).mean())
        curve.append(val_error)
        if val_error < best[0]:
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best = (val_error, epoch, state)
    if best[2] is not None:
        model.load_state_dict(best[2])
    test_pred = predict(model, x_test) * scale + mean
    test_errors = relative_l1(test_pred, test.dos.to(device), empty, settings.skip)
    return {
        "seed": seed,
        "test_error": float(test_errors.mean()),
        "val_error": best[0],
        "best_epoch": best[1] + 1,
        "val_curve": curve,
        "seconds": time.perf_counter() - start,
        "test_errors": test_errors.cpu(),
        "test_pred": test_pred.cpu(),
    }
