"""The `equissl` command: `equissl <command> [preset ...] [key=value ...]`.

Errors a user can cause print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import time
import warnings
from pathlib import Path

DEFAULT_RUN_NAME = "run"  # the schema's default `name`: a run left unnamed on the command line

USAGE = """usage: equissl <command> [preset ...] [key=value ...]

commands:
  pretrain [preset ...] [key=value ...]   pretrain (then evaluate) into runs/<name>/
  eval ckpt=PATH [out=F.json] [key=value]  evaluate a checkpoint's frozen backbone
  export ckpt=PATH out=FILE.safetensors   the trained backbone alone, for equissl.load_backbone
  baseline pixels|random [preset ...]     raw pixels or an untrained backbone, evaluated like a run
  sweep SWEEP [key=value ...]             several runs side by side, then a table and a plot
  report RUN_DIR ... [out=STEM]           table of finished runs (Markdown + CSV) and curves PNG
  experiment NAME [scale=S] [key=value]   a study of the papers at scale smoke|cpu|paper
  demo [key=value ...]                    SimCLR vs E-SimCLR on the embedded digits, on CPU
  transforms                              list the transformations and their label counts
  presets                                 list the presets in configs/
  config [preset ...] [key=value ...]     the resolved configuration, each key with its meaning
  bench [preset ...] [key=value ...]     images/s of the training step and its parts (steps=N)
  photonics build|run [key=value ...]     photonic-crystal DOS data and SSL regression study
  data prepare src=PATH out=DIR           write an ImageFolder as shards, to stream from

examples:
  equissl pretrain esimclr cifar10-cpu data.path=../shared/data/cifar10-jpeg.zip seed=1
  equissl eval ckpt=runs/esimclr/last.ckpt
  equissl experiment transformations scale=cpu data.name=imagefolder data.path=cifar10-jpeg.zip
  equissl pretrain simclr optim.epochs=5 backbone.width=16 name=quick

`equissl <command> --help` explains one command; `equissl --version` prints the version.
"""

KEYS = "keys: any configuration key as key=value; `equissl config [preset ...]` lists them all"
HELP = {
    "pretrain": f"""usage: equissl pretrain [preset ...] [key=value ...]

Pretrain a method, then evaluate its frozen backbone (linear probe, kNN, the transformation
heads). Presets merge in order, then the overrides. The run folder is out_dir/name/; the same
command continues an interrupted run (resume=auto).
{KEYS}

example: equissl pretrain esimclr cifar10-cpu data.name=imagefolder data.path=cifar10-jpeg.zip""",
    "eval": f"""usage: equissl eval ckpt=PATH [out=NAME.json] [preset ...] [key=value ...]

Evaluate a checkpoint's frozen backbone with its saved configuration (eval.* keys change the
evaluation); the results are written beside the checkpoint as NAME.json (default eval.json).
{KEYS}

example: equissl eval ckpt=runs/esimclr/last.ckpt eval.knn.k=20 out=knn20.json""",
    "export": """usage: equissl export ckpt=PATH out=FILE.safetensors | out=FILE.onnx | out=DIR format=hub

Write the trained backbone alone (FILE.safetensors and FILE.json beside it), for
equissl.load_backbone; or as an ONNX model (FILE.onnx: float images in [0, 1] -> features, the
normalisation inside; needs pip install 'equissl[onnx]'); or a model-hub folder (format=hub:
model.safetensors, config.json and a README.md model card).

example: equissl export ckpt=runs/esimclr/last.ckpt out=backbone.safetensors""",
    "baseline": f"""usage: equissl baseline pixels|random [preset ...] [key=value ...]

The rows a results table needs beside trained encoders, evaluated like a pretrained run (linear
probe, kNN, and the eval.* parts switched on, transfer included) into out_dir/name/results.json
for equissl report: `pixels` uses the raw pixels (normalised per channel, flattened) as
features; `random` the configured backbone at its random initialisation (seed=...), untrained.
{KEYS}

example: equissl baseline pixels cifar10-cpu data.name=imagefolder data.path=cifar10-jpeg.zip name=pixels""",
    "sweep": f"""usage: equissl sweep SWEEP [key=value ...]

Run the runs of a sweep file (configs/sweeps/ or a YAML path) side by side, then write a table
and curves. Overrides apply to every run; out_dir=DIR sets where the runs go.
{KEYS}

example: equissl sweep cifar10-cpu-sweep data.path=cifar10-jpeg.zip""",
    "report": """usage: equissl report RUN_DIR ... [out=STEM] [group_by=COLUMN] [file=results.json|eval.json]
                      [columns=A,B,...]

A table of finished runs (STEM.md, STEM.csv) and their training curves (STEM.png).

example: equissl report runs/simclr runs/esimclr out=compare""",
    "experiment": f"""usage: equissl experiment NAME [scale=smoke|cpu|paper] [key=value ...]

A study of the papers, run as a sweep. scale=smoke (default) checks that it runs in seconds;
cpu is sized for a 2-core machine; paper is the papers' recipe (GPUs).
names: {{names}}
{KEYS}

example: equissl experiment transformations scale=cpu data.name=imagefolder data.path=cifar10-jpeg.zip""",
    "demo": """usage: equissl demo [key=value ...]

SimCLR against E-SimCLR on scikit-learn's embedded handwritten digits, on the CPU in about a
minute; prints a table.

example: equissl demo""",
    "transforms": """usage: equissl transforms

List the transformations (for method.equivariance.N.transform) and their label counts.""",
    "presets": """usage: equissl presets

List the presets (methods, protocols, data, experiments, sweeps) shipped in configs/.""",
    "config": f"""usage: equissl config [preset ...] [key=value ...]

Print the configuration that `equissl pretrain` with the same arguments would run, one
key=value per line with its meaning; nothing is run or written.
{KEYS}

example: equissl config esimclr cifar10-paper""",
    "bench": f"""usage: equissl bench [preset ...] [key=value ...] [steps=N] [warmup=N] [size=S]
                     [out=FILE.json]

Images per second of the training step and of its parts (views, forward, backward, optimiser),
on synthetic data of the configured size.
{KEYS}

example: equissl bench esimclr backbone.width=16 steps=10""",
    "photonics": """usage: equissl photonics build|run [key=value ...]

Photonic-crystal density-of-states data (build) and the SSL regression study (run) of E-SSL;
see docs/photonics.md for the keys.

example: equissl photonics run scale=smoke""",
    "data": """usage: equissl data prepare src=FOLDER|FILE.zip out=DIR [shard_size=N] [workers=N]

Writes an ImageFolder (a folder or zip: <class>/<image>, or train/ and test/ (or val/) with
class folders, or images only) as webdataset shards of N samples (default 1000), in a seeded
random order, using `workers` processes (default: one per core). A rerun continues where a
stopped one ended. Train from them with data.name=imagefolder data.path=DIR (docs/data.md).

example: equissl data prepare src=../shared/data/cifar10-jpeg.zip out=data/cifar10-shards""",
}


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
    if command in ("presets", "transforms", "config"):
        return  # they never load Lightning
    import logging

    import lightning  # noqa: F401 - its import sets its loggers to INFO: set them after it

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _print_results(results: dict) -> None:
    """Every number the run or evaluation computed, `key=value`, a few to a line."""
    from equissl.app.progress import metric_items

    items = [f"{k}={v}" for k, v in metric_items(results)]
    for i in range(0, len(items), 6):
        print("  ".join(items[i : i + 6]))


# The name given to an unnamed `equissl pretrain` run, for the line printed if a signal stops it.
_generated: list[str] = []


def unique_run_name(presets: list[str], out_dir: Path, now: float | None = None) -> str:
    """`<presets>-<YYYYmmdd-HHMMSS>` (`run-...` without presets), with `-2`, `-3` ... when that
    folder exists: an unnamed run never continues or collides with another."""
    stem = "-".join(Path(p).stem for p in presets) or "run"
    name = f"{stem}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}"
    candidate, n = name, 1
    while (out_dir / candidate).exists():
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def cmd_pretrain(args: list[str]) -> None:
    from equissl.app.config import build_config
    from equissl.app.runner import pretrain, run_dir_of

    presets, overrides = _split(args)
    cfg = build_config(presets, overrides)
    named = any(o.startswith("name=") for o in overrides) or cfg.name != DEFAULT_RUN_NAME
    if not named:
        cfg.name = unique_run_name(presets, Path(cfg.out_dir))
        _generated.append(cfg.name)
        print(f"run {run_dir_of(cfg)} (continue it with name={cfg.name})", flush=True)
    results = pretrain(cfg)
    if results:
        _print_results(results)
        print(f"run folder: {run_dir_of(cfg)}")


def cmd_eval(args: list[str]) -> None:
    from equissl.app.config import build_config, load_config_file
    from equissl.app.runner import evaluate_checkpoint
    from equissl.errors import UserError

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
    from equissl.app.export import export_backbone, export_hub, export_onnx

    presets, overrides = _split(args)
    ckpt = _pop(overrides, "ckpt")
    out = _pop(overrides, "out")
    form = _pop(overrides, "format") or ("onnx" if str(out).endswith(".onnx") else "safetensors")
    if presets or overrides or not ckpt or not out or form not in ("safetensors", "onnx", "hub"):
        raise _Usage(
            "export needs ckpt=PATH out=FILE.safetensors (or out=FILE.onnx, or out=DIR format=hub) "
            "(e.g. ckpt=runs/esimclr/last.ckpt out=backbone.safetensors)"
        )
    if form == "onnx":
        print(f"wrote {export_onnx(ckpt, out)}")
        return
    if form == "hub":
        print(f"wrote {export_hub(ckpt, out)}/ (model.safetensors, config.json, README.md)")
        return
    weights, description = export_backbone(ckpt, out)
    print(f"wrote {weights} and {description}")


def cmd_baseline(args: list[str]) -> None:
    from equissl.app.baseline import BASELINES, run_baseline
    from equissl.app.config import build_config
    from equissl.app.runner import run_dir_of

    presets, overrides = _split(args)
    if not presets or presets[0] not in BASELINES:
        raise _Usage(f"baseline needs its kind first: {' or '.join(BASELINES)} (then presets)")
    kind, presets = presets[0], presets[1:]
    cfg = build_config(presets, overrides)
    if not any(o.startswith("name=") for o in overrides) and cfg.name == DEFAULT_RUN_NAME:
        cfg.name = unique_run_name([f"{kind}-baseline", *presets], Path(cfg.out_dir))
    _print_results(run_baseline(kind, cfg))
    print(f"run folder: {run_dir_of(cfg)}")


def _run_sweep(name: str, overrides: list[str], scale: str | None = None) -> Path:
    """Run a sweep, print its table, then fail (one line, exit 2) if any run failed."""
    from equissl.app.sweep import load_sweep, raise_failures, run_sweep

    out_dir = _pop(overrides, "out_dir") or "runs"
    table, root, failures = run_sweep(load_sweep(name), overrides, out_dir, scale=scale)
    print(table)
    curves = root / "curves.png"
    print(f"table: {root / 'results.md'}" + (f"  curves: {curves}" if curves.is_file() else ""))
    raise_failures(failures, root)
    return root


def cmd_sweep(args: list[str]) -> None:
    presets, overrides = _split(args)
    if len(presets) != 1:
        raise _Usage("sweep needs exactly one sweep name or YAML file")
    _run_sweep(presets[0], overrides)


def cmd_report(args: list[str]) -> None:
    from equissl.app.outputs import check_file_writable
    from equissl.app.sweep import DEFAULT_COLUMNS
    from equissl.reports import (
        collect_results,
        markdown_table,
        plot_curves,
        plot_rows_sensitivity,
        write_table,
    )

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
    written = [f"{out}.md", f"{out}.csv"]
    if plot_curves(dirs, f"{out}.png") is not None:
        written.append(f"{out}.png")
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


def cmd_config(args: list[str]) -> None:
    from equissl.app.config import build_config
    from equissl.app.keyhelp import annotated_settings

    presets, overrides = _split(args)
    print(annotated_settings(build_config(presets, overrides)))


def cmd_presets(args: list[str]) -> None:
    from equissl.app.config import CONFIG_DIR

    for path in sorted(CONFIG_DIR.rglob("*.yaml")):
        print(f"{path.stem:24s} {path.relative_to(CONFIG_DIR)}")


def cmd_photonics(args: list[str]) -> None:
    from equissl.photonics.command import photonics_command

    photonics_command(args)


def cmd_bench(args: list[str]) -> None:
    from equissl.app.bench import OPTIONS, bench_command

    presets, overrides = _split(args)
    options = {key: _pop(overrides, key) for key in OPTIONS}
    bench_command(presets, overrides, options, command=" ".join(["equissl bench", *args]))


def cmd_data(args: list[str]) -> None:
    from equissl.data.shards import SHARD_SIZE, prepare_shards

    presets, overrides = _split(args)
    src, out = _pop(overrides, "src"), _pop(overrides, "out")
    numbers = {key: _pop(overrides, key) for key in ("shard_size", "workers")}
    if presets != ["prepare"] or overrides or not src or not out:
        raise _Usage("data needs: prepare src=FOLDER|FILE.zip out=DIR [shard_size=N] [workers=N]")
    try:
        shard_size = int(numbers["shard_size"] or SHARD_SIZE)
        workers = int(numbers["workers"] or 0)
    except ValueError:
        raise _Usage("shard_size and workers must be whole numbers") from None
    manifest = prepare_shards(src, out, shard_size=shard_size, workers=workers)
    shards = len(manifest["train"]["shards"]) + len(manifest["test"]["shards"])
    print(
        f"wrote {out}: {manifest['train']['count']} training and {manifest['test']['count']} "
        f"test images in {shards} shards, {len(manifest['classes'])} classes"
    )


COMMANDS = {
    "pretrain": cmd_pretrain,
    "eval": cmd_eval,
    "export": cmd_export,
    "baseline": cmd_baseline,
    "sweep": cmd_sweep,
    "report": cmd_report,
    "experiment": cmd_experiment,
    "demo": cmd_demo,
    "transforms": cmd_transforms,
    "presets": cmd_presets,
    "config": cmd_config,
    "bench": cmd_bench,
    "photonics": cmd_photonics,
    "data": cmd_data,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if argv[0] in ("-V", "--version"):
        from equissl import __version__

        print(f"equissl {__version__}")
        return 0
    command, args = argv[0], argv[1:]
    if command in HELP and any(a in ("-h", "--help") for a in args):
        print(HELP[command].replace("{names}", ", ".join(EXPERIMENTS)))
        return 0
    if command not in COMMANDS:
        print(
            f"equissl: error: unknown command '{command}'; choose one of {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    from equissl.app import signals
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
    if stop.detail and _generated:
        return f"{what} {stop.detail}; run the same command with name={_generated[-1]} to continue"
    if stop.detail:
        return f"{what} {stop.detail}; run the same command again (resume=auto) to continue"
    return f"{what}; a run continues from its last.ckpt with the same command (resume=auto)"


if __name__ == "__main__":
    sys.exit(main())
