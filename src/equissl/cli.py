"""The `equissl` command: `equissl <command> [preset ...] [key=value ...]`.

Errors a user can cause print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import warnings
from pathlib import Path

USAGE = """usage: equissl <command> [preset ...] [key=value ...]

commands:
  pretrain [preset ...] [key=value ...]   pretrain (then evaluate) into runs/<name>/
  eval ckpt=PATH [out=F.json] [key=value]  evaluate a checkpoint's frozen backbone
  export ckpt=PATH out=FILE.safetensors   the trained backbone alone, for equissl.load_backbone
  sweep SWEEP [key=value ...]             several runs side by side, then a table and a plot
  report RUN_DIR ... [out=STEM]           table of finished runs (Markdown + CSV) and curves PNG
  experiment NAME [scale=S] [key=value]   a study of the papers at scale smoke|cpu|paper
  demo [key=value ...]                    SimCLR vs E-SimCLR on the embedded digits, on CPU
  transforms                              list the transformations and their label counts
  presets                                 list the presets in configs/
  bench [preset ...] [key=value ...]     images/s of the training step and its parts (steps=N)
  photonics build|run [key=value ...]     photonic-crystal DOS data and SSL regression study

examples:
  equissl pretrain esimclr cifar10-cpu data.path=../shared/data/cifar10-jpeg.zip seed=1
  equissl eval ckpt=runs/esimclr/last.ckpt
  equissl experiment transformations scale=cpu data.name=imagefolder data.path=cifar10-jpeg.zip
  equissl pretrain simclr optim.epochs=5 backbone.width=16 name=quick
"""


class _Usage(Exception):
    pass


def _split(args: list[str]) -> tuple[list[str], list[str]]:
    presets = [a for a in args if "=" not in a]
    overrides = [a for a in args if "=" in a]
    return presets, overrides


def _pop(overrides: list[str], key: str) -> str | None:
    for item in overrides:
        if item.startswith(f"{key}="):
            overrides.remove(item)
            return item.split("=", 1)[1]
    return None


def _quiet(command: str) -> None:
    """Python warnings off, and Lightning's start-up notes and tips off stderr (where a
    failure's one line goes); Lightning's errors still show."""
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    warnings.filterwarnings("ignore")
    if command in ("presets", "transforms"):
        return  # they never load Lightning
    import logging

    import lightning  # noqa: F401 - its import sets its loggers to INFO: set them after it

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _print_results(results: dict) -> None:
    keys = (
        "linear_acc",
        "linear_std",
        "linear_aug_acc",
        "linear_aug_std",
        "knn_acc",
        "transform_acc",
        "train_seconds",
        "eval_seconds",
    )
    shown = {k: results[k] for k in keys if isinstance(results.get(k), (int, float))}
    print("  ".join(f"{k}={v:.2f}" for k, v in shown.items()))


def cmd_pretrain(args: list[str]) -> None:
    from equissl.config import build_config
    from equissl.runner import pretrain, run_dir_of

    presets, overrides = _split(args)
    cfg = build_config(presets, overrides)
    results = pretrain(cfg)
    if results:
        _print_results(results)
        print(f"run folder: {run_dir_of(cfg)}")


def cmd_eval(args: list[str]) -> None:
    from equissl.config import build_config, load_config_file
    from equissl.errors import UserError
    from equissl.runner import evaluate_checkpoint

    presets, overrides = _split(args)
    ckpt = _pop(overrides, "ckpt")
    if not ckpt:
        raise _Usage("eval needs ckpt=PATH (e.g. ckpt=runs/esimclr/last.ckpt)")
    if not Path(ckpt).is_file():
        raise UserError(f"checkpoint not found: {ckpt}")
    out = _pop(overrides, "out") or "eval.json"
    if Path(out).name != out or not out.endswith(".json"):
        raise _Usage(f"out= names a .json file written beside the checkpoint, got '{out}'")
    saved = Path(ckpt).parent / "config.yaml"
    base = load_config_file(saved) if saved.is_file() else None
    cfg = build_config(presets, overrides, base=base)
    results = evaluate_checkpoint(cfg, ckpt, out)
    _print_results(results)
    print(f"wrote {Path(ckpt).parent / out}")


def cmd_export(args: list[str]) -> None:
    from equissl.encoder import export_backbone

    presets, overrides = _split(args)
    ckpt = _pop(overrides, "ckpt")
    out = _pop(overrides, "out")
    if presets or overrides or not ckpt or not out:
        raise _Usage(
            "export needs ckpt=PATH out=FILE.safetensors "
            "(e.g. ckpt=runs/esimclr/last.ckpt out=backbone.safetensors)"
        )
    weights, description = export_backbone(ckpt, out)
    print(f"wrote {weights} and {description}")


def _run_sweep(name: str, overrides: list[str], scale: str | None = None) -> Path:
    """Run a sweep, print its table, then fail (one line, exit 2) if any run failed."""
    from equissl.sweep import load_sweep, raise_failures, run_sweep

    out_dir = _pop(overrides, "out_dir") or "runs"
    table, root, failures = run_sweep(load_sweep(name), overrides, out_dir, scale=scale)
    print(table)
    print(f"table: {root / 'results.md'}  curves: {root / 'curves.png'}")
    raise_failures(failures, root)
    return root


def cmd_sweep(args: list[str]) -> None:
    presets, overrides = _split(args)
    if len(presets) != 1:
        raise _Usage("sweep needs exactly one sweep name or YAML file")
    _run_sweep(presets[0], overrides)


def cmd_report(args: list[str]) -> None:
    from equissl.outputs import check_file_writable
    from equissl.reports import (
        collect_results,
        markdown_table,
        plot_curves,
        plot_rows_sensitivity,
        write_table,
    )
    from equissl.sweep import DEFAULT_COLUMNS

    dirs, overrides = _split(args)
    out = _pop(overrides, "out") or "report"
    group_by = _pop(overrides, "group_by")
    filename = _pop(overrides, "file") or "results.json"
    columns = _pop(overrides, "columns")
    columns = columns.split(",") if columns else DEFAULT_COLUMNS
    if overrides or not dirs:
        raise _Usage(
            "report takes run folders and optional out=STEM group_by=COLUMN "
            "file=results.json|eval.json columns=A,B,..."
        )
    for suffix in (".md", ".csv", ".png"):
        check_file_writable(f"{out}{suffix}", "report")
    rows = collect_results(dirs, filename)
    write_table(rows, columns, out, group_by=group_by)
    plot_curves(dirs, f"{out}.png")
    written = [f"{out}.md", f"{out}.csv", f"{out}.png"]
    if plot_rows_sensitivity(rows, f"{out}-hue.png"):
        written.append(f"{out}-hue.png")
    print(markdown_table(rows, columns, group_by=group_by))
    print(f"wrote {', '.join(written)}")


EXPERIMENTS = (
    "transformations",
    "essl-cifar10",
    "class-information",
    "care",
    "ce-vs-care",
    "base-augmentations",
)


def cmd_experiment(args: list[str]) -> None:
    names, overrides = _split(args)
    if len(names) != 1 or names[0] not in EXPERIMENTS:
        raise _Usage(f"experiment needs one name: {', '.join(EXPERIMENTS)}")
    scale = _pop(overrides, "scale") or "smoke"
    _run_sweep(names[0], overrides, scale=scale)


def cmd_transforms(args: list[str]) -> None:
    from equissl.transforms import TRANSFORMS, get_transformation

    if args:
        raise _Usage("transforms takes no arguments")
    for name in TRANSFORMS:
        t = get_transformation(name, 32)
        group = "group" if t.relative is not None else "not a group"
        print(f"{name:12s} {t.num_labels:3d} labels  ({group})")
    print("products: a+b (e.g. rotation+hflip); regress mode: crop, jitter, crop+jitter")


def cmd_demo(args: list[str]) -> None:
    presets, overrides = _split(args)
    if presets:
        raise _Usage("demo takes only key=value overrides")
    print("equissl demo: SimCLR vs E-SimCLR on scikit-learn's handwritten digits (CPU)\n")
    _run_sweep("demo-sweep", overrides)


def cmd_presets(args: list[str]) -> None:
    from equissl.config import CONFIG_DIR

    for path in sorted(CONFIG_DIR.rglob("*.yaml")):
        print(f"{path.stem:24s} {path.relative_to(CONFIG_DIR)}")


def cmd_photonics(args: list[str]) -> None:
    from equissl.photonics.command import photonics_command

    photonics_command(args)


def cmd_bench(args: list[str]) -> None:
    from equissl.bench import OPTIONS, bench_command

    presets, overrides = _split(args)
    options = {key: _pop(overrides, key) for key in OPTIONS}
    bench_command(presets, overrides, options, command=" ".join(["equissl bench", *args]))


COMMANDS = {
    "pretrain": cmd_pretrain,
    "eval": cmd_eval,
    "export": cmd_export,
    "sweep": cmd_sweep,
    "report": cmd_report,
    "experiment": cmd_experiment,
    "demo": cmd_demo,
    "transforms": cmd_transforms,
    "presets": cmd_presets,
    "bench": cmd_bench,
    "photonics": cmd_photonics,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, args = argv[0], argv[1:]
    if command not in COMMANDS:
        print(
            f"equissl: error: unknown command '{command}'; choose one of {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    from equissl import signals
    from equissl.errors import UserError

    try:
        with signals.installed():
            _quiet(command)
            COMMANDS[command](args)
    except (UserError, _Usage) as exc:
        print(f"equissl: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in USER_OS_ERRORS:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"equissl: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except (signals.Stop, KeyboardInterrupt) as exc:
        stop = exc if isinstance(exc, signals.Stop) else signals.Stop(signal.SIGINT)
        print(f"equissl: {_stopped(stop)}", file=sys.stderr)
        return stop.exit_status
    return 0


# Faults of the machine a user can fix (space, permissions): one line and exit 2, like UserError.
USER_OS_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _stopped(stop) -> str:
    """The line printed when a signal stops a command: what happened and how to continue."""
    what = "terminated (SIGTERM)" if stop.name == "SIGTERM" else f"interrupted ({stop.name})"
    if stop.detail:
        return f"{what} {stop.detail}; run the same command again (resume=auto) to continue"
    return f"{what}; a run continues from its last.ckpt with the same command (resume=auto)"


if __name__ == "__main__":
    sys.exit(main())
