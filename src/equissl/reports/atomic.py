"""Atomic file writes: a reader never sees a half-written file, and a failed write (a full disk)
leaves no temporary file and the previous version in place."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def _removed_on_failure(tmp: Path, path: Path) -> Iterator[None]:
    """On any failure remove `tmp`; an OSError is raised again naming `path`, not `tmp`."""
    try:
        yield
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def temp_beside(path: str | Path, data: bytes) -> Path:
    """`data` written in full and flushed to disk in a new temporary file beside `path` (same
    folder, so a rename is atomic); the file is removed again if writing fails."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    with _removed_on_failure(tmp, path), open(tmp, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to a temp file beside `path`, then os.replace it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path, data)
    with _removed_on_failure(tmp, path):
        os.replace(tmp, path)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 `text` atomically (see write_bytes_atomic)."""
    return write_bytes_atomic(path, text.encode("utf-8"))
