"""Outputs checked before the work, and run folders held by one process at a time.

Every command that writes checks its destination first, so an unwritable folder costs one line,
not an evaluation thrown away. A run folder is locked while a process trains in it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from equissl.errors import UserError


class OutputError(UserError):
    """A destination that cannot be written, or a run folder another process holds."""


def check_writable(path: str | Path, what: str = "output") -> Path:
    """`path` is a folder that exists or can be made, and a file can be created in it: checked
    by creating (and removing) a probe file in the nearest existing folder. Creates nothing."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link: its target cannot be made here
            break
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write the {what} in {path}: {existing} is not a folder")
    probe = existing / f".equissl-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            why = f"{existing} is read-only"
        else:
            why = (exc.strerror or str(exc)).lower()
        raise OutputError(f"cannot write the {what} in {path}: {why}") from None
    return path


def check_file_writable(path: str | Path, what: str = "output") -> Path:
    """`path` can be written as a file: its folder is writable and it is not a folder."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write the {what} {path}: a folder of that name is in the way")
    check_writable(path.parent, what)
    return path


@contextlib.contextmanager
def run_folder_lock(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir/.lock` (an advisory flock, released by the OS if the process dies) for the
    duration; a second process gets one line instead of sharing the folder."""
    import fcntl

    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / ".lock"
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise OutputError(
                f"{run_dir} is in use by {holder}; wait for it to finish or pass another name=..."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
