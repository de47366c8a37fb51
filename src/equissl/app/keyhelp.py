"""One-line meanings of the configuration keys, read from the comments of the schema
(`equissl.app.config`'s dataclasses), for `equissl config` and `equissl <command> --help`."""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing

from equissl.app import config

# `name: type = default  # meaning`, then `#   more` lines continuing the meaning.
FIELD = re.compile(r"^\s+(\w+): [^=]+=.*?(?:#\s*(.*))?$")
MORE = re.compile(r"^\s+#\s*(.*)$")


def _comments(cls: type) -> dict[str, str]:
    meanings: dict[str, str] = {}
    name = None
    for line in inspect.getsource(cls).splitlines():
        field = FIELD.match(line)
        if field:
            name = field.group(1)
            meanings[name] = (field.group(2) or "").strip()
            continue
        more = MORE.match(line)
        if more and name is not None:
            meanings[name] = f"{meanings[name]} {more.group(1).strip()}".strip()
        elif line.strip():
            name = None
    return meanings


def _dataclass_of(tp: object) -> type | None:
    """The dataclass a field holds directly or as list items (EquivarianceConfig)."""
    if dataclasses.is_dataclass(tp):
        return tp  # type: ignore[return-value]
    for arg in typing.get_args(tp):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def key_meanings(cls: type = config.Config, prefix: str = "") -> dict[str, str]:
    """Dotted key -> meaning, for every leaf of the schema (list items as `key.*.field`)."""
    hints = typing.get_type_hints(cls, vars(config))
    comments = _comments(cls)
    out: dict[str, str] = {}
    for field in dataclasses.fields(cls):
        inner = _dataclass_of(hints[field.name])
        key = f"{prefix}{field.name}"
        if inner is None:
            out[key] = comments.get(field.name, "")
        elif typing.get_origin(hints[field.name]) is list:
            out.update(key_meanings(inner, f"{key}.*."))
        else:
            out.update(key_meanings(inner, f"{key}."))
    return out


def meaning(key: str, meanings: dict[str, str]) -> str:
    """The meaning of a concrete key (list indices as in `a.0.b`), or ''."""
    return meanings.get(re.sub(r"\.\d+\.", ".*.", key), "")


def settings(tree: object, prefix: str = "") -> dict[str, object]:
    """Dotted key -> value of every setting: lists of numbers or names (and empty lists) are
    one value, as they are written on the command line; lists of sections (the terms) expand
    by index."""
    if isinstance(tree, dict):
        return {
            k: v for key, sub in tree.items() for k, v in settings(sub, f"{prefix}{key}.").items()
        }
    if isinstance(tree, list) and tree and all(isinstance(item, dict) for item in tree):
        return {
            k: v for i, sub in enumerate(tree) for k, v in settings(sub, f"{prefix}{i}.").items()
        }
    return {prefix[:-1]: tree}


def annotated_settings(cfg) -> str:
    """Every setting of a resolved configuration as `key=value  # meaning` lines (the same form
    as a command-line override)."""
    from omegaconf import OmegaConf

    meanings = key_meanings()
    settings_ = settings(OmegaConf.to_container(cfg, resolve=True))
    width = max(len(f"{k}={_show(v)}") for k, v in settings_.items())
    lines = []
    for key, value in settings_.items():
        text = f"{key}={_show(value)}"
        note = meaning(key, meanings)
        lines.append(f"{text:{width}s}  # {note}" if note else text)
    return "\n".join(lines)


def _show(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if value == "":
        return '""'
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)
