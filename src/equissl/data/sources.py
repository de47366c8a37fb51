"""Shared checks for data sources: the source path, and one-line error messages."""

from __future__ import annotations

from pathlib import Path

from equissl.errors import DataError


def source_path(path: str | Path | None, name: str) -> Path:
    """`path` (the source of dataset `name`) as an absolute path; DataError when it is unset or
    does not exist."""
    if not path:
        raise DataError(f"data.path is required for {name}; pass data.path=...")
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise DataError(f"data path not found: {resolved}; check data.path={path}")
    return resolved.resolve()


def first_line(exc: BaseException) -> str:
    """The exception as `Type: first line of its message`, to embed in a one-line error."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def corrupt_source(path: Path | str, exc: BaseException, fix: str) -> DataError:
    """A DataError saying `path` is truncated or corrupt, why, and how to fix it."""
    return DataError(f"{path} is truncated or corrupt ({first_line(exc)}); {fix}")
