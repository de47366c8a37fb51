"""`equissl photonics build|run key=value ...`: the dataset builder and the DOS workflow."""

from __future__ import annotations

import difflib
from dataclasses import fields

from equissl.errors import ConfigError

USAGE = (
    "photonics needs a subcommand: `equissl photonics build family=blob n_labeled=N "
    "n_unlabeled=N [seed=0] [out=DIR] [workers=N]` or `equissl photonics run "
    "[family=blob|pm|all] [scale=smoke|cpu|paper] [key=value ...]`"
)
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _convert(command: str, key: str, text: str, kind: type) -> object:
    text = text.strip()
    if kind is str:
        return text
    if text.lower() in ("none", "null") and kind is type(None):
        return None
    try:
        if kind is bool:
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError
            return text.lower() in _TRUE
        if kind is int or kind is type(None):  # None: an optional integer (bands)
            return int(text)
        return float(text)
    except ValueError:
        name = "an integer" if kind in (int, type(None)) else kind.__name__
        raise ConfigError(f"photonics {command}: {key} must be {name}, got {text!r}") from None


def parse_photonics_args(command: str, items: list[str], kinds: dict[str, type]) -> dict:
    """key=value items to a dict, each value converted to its key's type; one-line errors."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"photonics {command}: expected key=value, got {item!r}")
        if key not in kinds:
            close = difflib.get_close_matches(key, kinds, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(
                f"unknown photonics {command} key {key!r}{hint}; valid keys: {', '.join(kinds)}"
            )
        out[key] = _convert(command, key, text, kinds[key])
    return out


def _defaults_kinds(cls: type) -> dict[str, type]:
    return {f.name: type(f.default) for f in fields(cls)}


def cmd_build(items: list[str]) -> None:
    from equissl.photonics.dataset import DEFAULT_ROOT, DatasetSpec, build_dataset
    from equissl.photonics.settings import PhCSettings

    settings_kinds = _defaults_kinds(PhCSettings)
    kinds = {"family": str, "n_labeled": int, "n_unlabeled": int, "seed": int,
             "shard_size": int, "out": str, "data_dir": str, "workers": int,
             **settings_kinds}  # fmt: skip
    opts = parse_photonics_args("build", items, kinds)
    missing = [k for k in ("family", "n_labeled", "n_unlabeled") if k not in opts]
    if missing:
        raise ConfigError(f"photonics build needs {', '.join(f'{k}=...' for k in missing)}")
    settings = PhCSettings(**{k: opts.pop(k) for k in list(opts) if k in settings_kinds})
    spec = DatasetSpec(
        opts["family"], opts["n_labeled"], opts["n_unlabeled"], opts.get("seed", 0),
        opts.get("shard_size", 64), settings,
    )  # fmt: skip
    result = build_dataset(
        spec, opts.get("out"), root=opts.get("data_dir", DEFAULT_ROOT),
        workers=opts.get("workers") or None,
    )  # fmt: skip
    if result.computed:
        print(f"built {len(result.computed)} shards: {result.path}")
    else:
        print(f"dataset already complete: {result.path}")


def cmd_run(items: list[str]) -> None:
    from equissl.photonics.workflow import RunConfig, config_from, run

    run(config_from(parse_photonics_args("run", items, _defaults_kinds(RunConfig))))


def photonics_command(args: list[str]) -> None:
    """Dispatch `equissl photonics <build|run> key=value ...`."""
    if not args or args[0] not in ("build", "run"):
        raise ConfigError(USAGE)
    (cmd_build if args[0] == "build" else cmd_run)(args[1:])
