"""Atomic file writes: a reader never sees a half-written file, and a failed write (a full disk)
leaves no temporary file and the previous version in place."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def temp_beside(path: str | Path, data: bytes) -> Path:
    """`data` written in full and flushed to disk in a new temporary file beside `path` (same
    folder, so a rename is atomic); the file is removed again if writing fails. An OSError
    names `path`, not the temporary file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to a temp file beside `path`, then os.replace it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path, data)
    try:
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 `text` atomically (see write_bytes_atomic)."""
    return write_bytes_atomic(path, text.encode("utf-8"))
