"""`equissl photonics run`: DOS regression with supervised, SimCLR and E-SimCLR encoders.

For each family: build (or reuse) the dataset, pretrain SimCLR and E-SimCLR on the unlabelled
cells, fine-tune each encoder and a randomly initialised one on the labelled training cells
with `seeds` seeds, select each run's epoch on the validation split, and report the test
relative L1 error in `<out_dir>/photonics-<family>-<scale>/`: results.md, results.csv,
results.json and dos_examples.png.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from equissl.errors import ConfigError
from equissl.photonics.cells import FAMILIES
from equissl.photonics.dataset import (
    DEFAULT_ROOT,
    DatasetSpec,
    build_dataset,
    load_dataset,
    torch_threads,
)
from equissl.photonics.dos import empty_lattice_dos, homogeneous_medium_target
from equissl.photonics.learn import (
    ARCHS,
    POOLS,
    FinetuneSettings,
    PretrainSettings,
    Split,
    finetune,
    pretrain,
    relative_l1,
)
from equissl.photonics.settings import PhCSettings
from equissl.reports.atomic import write_text_atomic
from equissl.reports.figure import save_png

METHODS = ("supervised", "simclr", "esimclr")
EQ_MODES = ("relative", "predict")


@dataclass(frozen=True)
class RunConfig:
    """Every setting of `equissl photonics run`; the defaults are the `cpu` scale."""

    family: str = "all"  # blob | pm | all (both, one after the other)
    scale: str = "cpu"
    seed: int = 0  # dataset and pretraining seed; fine-tuning seeds are seed .. seed+seeds-1
    seeds: int = 3
    methods: str = ",".join(METHODS)
    # data: the labelled cells split into test [0, n_test), val [n_test, n_test + n_val), train
    n_labeled: int = 1000
    n_val: int = 200
    n_test: int = 300
    n_train: int = 0  # 0: every labelled cell outside val and test
    n_unlabeled: int = 5000
    shard_size: int = 64
    workers: int = 0  # dataset build processes; 0: all cores
    data_dir: str = str(DEFAULT_ROOT)
    order: int = 7  # plane-wave order of the labels
    k_grid: int = 10  # Bloch-vector grid of the labels
    # network
    arch: str = "cnn"  # cnn | resnet18
    pool: str = "avg"  # cnn only: avg (global average) | flatten (keeps the final map's positions)
    width: int = 16
    # pretraining
    pretrain_epochs: int = 6
    pretrain_batch: int = 128
    pretrain_lr: float = 1e-3
    temperature: float = 0.5
    proj_hidden: int = 256
    proj_dim: int = 64
    eq_weight: float = 0.4
    eq_mode: str = "relative"  # relative | predict
    head_hidden: int = 256
    # fine-tuning
    finetune_epochs: int = 30
    finetune_batch: int = 64
    finetune_lr: float = 1e-3
    weight_decay: float = 1e-4
    reg_hidden: int = 256
    finetune_augment: bool = True
    # metric and report
    skip: int = 10  # lowest DOS grid points left out of the error
    examples: int = 3  # test cells drawn in dos_examples.png
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 1  # torch CPU threads while training; 0: torch's default (see docs)
    out_dir: str = "runs"

    def __post_init__(self) -> None:
        families = self.families()
        if not families or any(f not in FAMILIES for f in families):
            raise ConfigError(f"photonics family must be blob, pm or all, got {self.family!r}")
        if self.scale not in SCALES:
            raise ConfigError(
                f"unknown photonics scale {self.scale!r}; choose one of {', '.join(SCALES)}"
            )
        bad = [m for m in self.method_list() if m not in METHODS]
        if bad or not self.method_list():
            raise ConfigError(
                f"photonics methods: choose from {', '.join(METHODS)}, got {self.methods!r}"
            )
        if self.arch not in ARCHS:
            raise ConfigError(
                f"photonics arch must be one of {', '.join(ARCHS)}, got {self.arch!r}"
            )
        if self.pool not in POOLS:
            raise ConfigError(
                f"photonics pool must be one of {', '.join(POOLS)}, got {self.pool!r}"
            )
        if self.eq_mode not in EQ_MODES:
            raise ConfigError(
                f"photonics eq_mode must be one of {', '.join(EQ_MODES)}, got {self.eq_mode!r}"
            )
        for key in (
            "seeds",
            "width",
            "pretrain_epochs",
            "pretrain_batch",
            "finetune_epochs",
            "finetune_batch",
        ):
            if getattr(self, key) < 1:
                raise ConfigError(f"photonics {key} must be >= 1, got {getattr(self, key)}")
        if self.n_val < 1 or self.n_test < 1 or self.n_unlabeled < 2:
            raise ConfigError("photonics needs n_val >= 1, n_test >= 1 and n_unlabeled >= 2")
        if self.n_labeled - self.n_val - self.n_test < 2:
            raise ConfigError(
                f"photonics n_labeled={self.n_labeled} leaves fewer than 2 training cells "
                f"after n_val={self.n_val} and n_test={self.n_test}"
            )
        self.settings()  # a ConfigError for a bad order or k_grid
        if not 0 <= self.skip < PhCSettings().n_freq:
            raise ConfigError(
                f"photonics skip must be in 0..{PhCSettings().n_freq - 1}, got {self.skip}"
            )

    def families(self) -> list[str]:
        return list(FAMILIES) if self.family == "all" else [f for f in self.family.split(",") if f]

    def method_list(self) -> list[str]:
        return [m.strip() for m in self.methods.split(",") if m.strip()]

    def settings(self) -> PhCSettings:
        return PhCSettings(order=self.order, k_grid=self.k_grid)


# Scale presets: overrides of the RunConfig defaults (which are the cpu scale).
SCALES: dict[str, dict] = {
    "smoke": {
        "n_labeled": 24, "n_val": 6, "n_test": 6, "n_unlabeled": 64, "shard_size": 16,
        "workers": 1, "order": 2, "k_grid": 3, "width": 4, "seeds": 2, "pretrain_epochs": 1,
        "pretrain_batch": 32, "finetune_epochs": 2, "finetune_batch": 8, "proj_hidden": 32,
        "proj_dim": 16, "head_hidden": 32, "reg_hidden": 32, "examples": 2,
    },
    "cpu": {},
    "paper": {
        "n_labeled": 5000, "n_val": 500, "n_test": 1500, "n_unlabeled": 20000, "arch": "resnet18",
        "width": 64, "pretrain_epochs": 200, "pretrain_batch": 512, "finetune_epochs": 200,
        "finetune_batch": 128, "proj_hidden": 2048, "proj_dim": 128, "head_hidden": 2048,
        "reg_hidden": 1024,
    },
}  # fmt: skip


def config_from(overrides: dict) -> RunConfig:
    """RunConfig from key/value overrides: the defaults, then the preset of the scale (smoke
    unless `scale` is given), then the overrides."""
    overrides = {"scale": "smoke", **overrides}
    scale = overrides["scale"]
    if scale not in SCALES:
        raise ConfigError(f"unknown photonics scale {scale!r}; choose one of {', '.join(SCALES)}")
    return RunConfig(**{**SCALES[scale], **overrides})


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"photonics device={name} asked but CUDA is not available; use device=cpu"
        )
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown photonics device {name!r}; use auto, cpu or cuda") from None


def _splits(cells: torch.Tensor, dos: torch.Tensor, cfg: RunConfig) -> dict[str, Split]:
    test_end = cfg.n_test
    val_end = test_end + cfg.n_val
    train_end = len(cells) if cfg.n_train <= 0 else min(len(cells), val_end + cfg.n_train)
    bounds = {"test": (0, test_end), "val": (test_end, val_end), "train": (val_end, train_end)}
    return {k: Split(cells[a:b], dos[a:b]) for k, (a, b) in bounds.items()}


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def pretrain_settings(cfg: RunConfig) -> PretrainSettings:
    """The settings `pretrain` reads, from the run's."""
    return PretrainSettings(**{f.name: getattr(cfg, f.name) for f in fields(PretrainSettings)})


def finetune_settings(cfg: RunConfig) -> FinetuneSettings:
    """The settings `finetune` reads, from the run's."""
    return FinetuneSettings(**{f.name: getattr(cfg, f.name) for f in fields(FinetuneSettings)})


def run_family(cfg: RunConfig, family: str, log: Callable[[str], None] = print) -> Path:
    """The whole study for one family; returns its run folder."""
    settings = cfg.settings()
    spec = DatasetSpec(family, cfg.n_labeled, cfg.n_unlabeled, cfg.seed, cfg.shard_size, settings)
    device = _device(cfg.device)
    log(f"photonics {family} ({cfg.scale}): dataset {spec.default_dir(cfg.data_dir)}")
    built = build_dataset(spec, root=cfg.data_dir, workers=cfg.workers or None)
    data = load_dataset(built.path)
    splits = _splits(data.cells, data.dos, cfg)
    empty = empty_lattice_dos(settings.frequency_grid(), settings.sigma)
    methods: dict[str, dict] = {}
    for method in cfg.method_list():
        state, pre = None, {"seconds": 0.0, "loss": None, "transform_acc": None}
        if method != "supervised":
            encoder, pre = pretrain(
                method, data.unlabeled, family, pretrain_settings(cfg), device, log
            )
            state = {k: v.cpu() for k, v in encoder.state_dict().items()}
        runs = []
        for i in range(cfg.seeds):
            result = finetune(
                state,
                splits["train"],
                splits["val"],
                splits["test"],
                family,
                finetune_settings(cfg),
                cfg.seed + i,
                empty,
                device,
            )
            log(
                f"  {method} fine-tuning seed {result['seed']}: test error "
                f"{100 * result['test_error']:.2f} % (val {100 * result['val_error']:.2f} %, "
                f"epoch {result['best_epoch']}, {result['seconds']:.0f} s)"
            )
            runs.append(result)
        methods[method] = {"pretrain": pre, "runs": runs}
    run_dir = Path(cfg.out_dir) / f"photonics-{family}-{cfg.scale}"
    log(_write_outputs(run_dir, cfg, family, built.path, splits, empty, methods))
    log(f"run folder: {run_dir} (results.md, results.csv, results.json, dos_examples.png)")
    return run_dir


def run(cfg: RunConfig, log: Callable[[str], None] = print) -> list[Path]:
    """Every family of `cfg`, one after the other, with cfg.threads torch CPU threads."""
    with torch_threads(cfg.threads):
        return [run_family(cfg, family, log) for family in cfg.families()]


def _summary(method: str, entry: dict) -> dict:
    errors = [r["test_error"] for r in entry["runs"]]
    finetune_seconds = sum(r["seconds"] for r in entry["runs"])
    return {
        "method": method,
        "error_mean": statistics.fmean(errors),
        "error_std": _std(errors),
        "errors": errors,
        "val_errors": [r["val_error"] for r in entry["runs"]],
        "best_epochs": [r["best_epoch"] for r in entry["runs"]],
        "transform_acc": entry["pretrain"]["transform_acc"],
        "pretrain_seconds": entry["pretrain"]["seconds"],
        "finetune_seconds": finetune_seconds,
        "train_seconds": entry["pretrain"]["seconds"] + finetune_seconds,
    }


def _reference_error(test: Split, cfg: RunConfig, empty: torch.Tensor) -> float:
    """The test error of the learning-free homogeneous-medium reference (mean permittivity)."""
    pred = homogeneous_medium_target(test.cells, cfg.settings())
    return float(relative_l1(pred, test.dos, empty, cfg.skip).mean())


def _markdown(rows: list[dict], title: str, reference: float) -> str:
    lines = [
        f"## {title}",
        "",
        "| method | rel. L1 error (%) | per seed (%) | best epochs | transform acc | pretrain s | fine-tune s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        seeds = ", ".join(f"{100 * e:.2f}" for e in r["errors"])
        acc = "—" if r["transform_acc"] is None else f"{r['transform_acc']:.2f}"
        lines.append(
            f"| {r['method']} | {100 * r['error_mean']:.2f} ± {100 * r['error_std']:.2f} | {seeds} "
            f"| {', '.join(map(str, r['best_epochs']))} | {acc} | {r['pretrain_seconds']:.0f} "
            f"| {r['finetune_seconds']:.0f} |"
        )
    lines += [
        "",
        f"Reference without learning: a homogeneous medium of each cell's mean permittivity "
        f"(the effective-medium slope of the DOS, no bands or gaps): {100 * reference:.2f} %.",
    ]
    return "\n".join(lines) + "\n"


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["method", "error_mean", "error_std", "errors", "best_epochs", "transform_acc",
              "pretrain_seconds", "finetune_seconds", "train_seconds"]  # fmt: skip
    writer.writerow(header)
    for r in rows:
        writer.writerow(
            ";".join(map(str, r[k])) if isinstance(r[k], list) else "" if r[k] is None else r[k]
            for k in header
        )
    return buf.getvalue()


def _write_outputs(
    run_dir: Path,
    cfg: RunConfig,
    family: str,
    dataset: Path,
    splits: dict[str, Split],
    empty: torch.Tensor,
    methods: dict[str, dict],
) -> str:
    """Write results.json, results.md, results.csv and dos_examples.png; returns the Markdown."""
    rows = [_summary(m, entry) for m, entry in methods.items()]
    reference = _reference_error(splits["test"], cfg, empty)
    sizes = {k: len(s.cells) for k, s in splits.items()}
    title = (
        f"Photonic DOS regression, {family}, scale {cfg.scale}: test relative L1 error, mean ± "
        f"std over {cfg.seeds} fine-tuning seeds (train {sizes['train']}, val {sizes['val']}, "
        f"test {sizes['test']} labelled; {cfg.n_unlabeled} unlabelled cells)"
    )
    record = {
        "family": family,
        "scale": cfg.scale,
        "config": {**asdict(cfg), "family": family},
        "dataset": str(dataset),
        "splits": sizes,
        "metric": (
            "mean over test cells of sum_{j>=skip} |pred_j - true_j| / sum_{j>=skip} "
            "|true_j + empty_j| (true, pred: DOS - empty-lattice DOS; empty: the empty-lattice DOS)"
        ),
        "results": rows,
        "homogeneous_medium_error": reference,
        "runs": {
            m: [{k: v for k, v in r.items() if not k.startswith("test_")} for r in e["runs"]]
            for m, e in methods.items()
        },
    }
    write_text_atomic(run_dir / "results.json", json.dumps(record, indent=2) + "\n")
    markdown = _markdown(rows, title, reference)
    write_text_atomic(run_dir / "results.md", markdown)
    write_text_atomic(run_dir / "results.csv", _csv(rows))
    _plot_examples(run_dir / "dos_examples.png", cfg, family, splits["test"], empty, methods)
    return markdown


def _plot_examples(
    out: Path, cfg: RunConfig, family: str, test: Split, empty: torch.Tensor, methods: dict
) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    count = min(cfg.examples, len(test.cells))
    fig = Figure(figsize=(10, 3 * count), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(f"{family}: test cells, true and predicted DOS (fine-tuning seed {cfg.seed})")
    axes = fig.subplots(count, 2, squeeze=False, width_ratios=[1, 3])
    grid = cfg.settings().frequency_grid().numpy()
    base = empty.numpy()
    for i in range(count):
        cell_ax, dos_ax = axes[i]
        image = cell_ax.imshow(test.cells[i].numpy(), cmap="viridis", vmin=1)
        fig.colorbar(image, ax=cell_ax, fraction=0.046, label="ε")
        cell_ax.set_title(f"test cell {i}")
        cell_ax.set_axis_off()
        dos_ax.plot(grid, test.dos[i].numpy() + base, color="black", lw=2, label="true")
        for method, entry in methods.items():
            run = entry["runs"][0]
            label = f"{method} ({100 * float(run['test_errors'][i]):.1f} %)"
            dos_ax.plot(grid, run["test_pred"][i].numpy() + base, lw=1, label=label)
        dos_ax.plot(grid, base, color="gray", ls="--", lw=1, label="empty lattice")
        dos_ax.axvspan(grid[0], grid[cfg.skip], color="gray", alpha=0.15)
        dos_ax.set_xlabel("frequency ωa/2πc")
        dos_ax.set_ylabel("DOS")
        dos_ax.legend(fontsize=7, loc="upper left")
    save_png(fig, out)
