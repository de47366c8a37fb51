"""Shared checks for data sources: the path from the config, and one-line error messages."""

from __future__ import annotations

from pathlib import Path

from equissl.config import DataConfig
from equissl.errors import DataError


def source_path(cfg: DataConfig) -> Path:
    """`cfg.path` as an absolute path; DataError when it is unset or does not exist."""
    if not cfg.path:
        raise DataError(f"data.path is required for {cfg.name}; pass data.path=...")
    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise DataError(f"data path not found: {path}; check data.path={cfg.path}")
    return path.resolve()


def first_line(exc: BaseException) -> str:
    """The exception as `Type: first line of its message`, to embed in a one-line error."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def corrupt(path: Path | str, exc: BaseException, fix: str) -> DataError:
    """A DataError saying `path` is truncated or corrupt, why, and how to fix it."""
    return DataError(f"{path} is truncated or corrupt ({first_line(exc)}); {fix}")
