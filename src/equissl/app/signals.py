"""SIGTERM and SIGINT as a cluster scheduler and a user send them.

Outside training a signal stops the command at once (`Stop`). During training it is held
until the next step boundary, where the run writes `last.ckpt` and stops, so `resume=auto`
continues exactly. A second SIGINT while one is held stops at once (the checkpoint on disk is
always whole: it is written to a temporary file and renamed). The CLI turns `Stop` into one line
and exit status 128 + signal: 143 for SIGTERM (requeue and resume), 130 for SIGINT.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

HANDLED = (signal.SIGTERM, signal.SIGINT)
_state: dict[str, object] = {"defer": False, "pending": None, "installed": False, "pid": None}


class Stop(BaseException):
    """The command was stopped by a signal (a BaseException, as KeyboardInterrupt is, so no
    `except Exception` swallows it)."""

    def __init__(self, signum: int, detail: str = "") -> None:
        super().__init__(signum, detail)
        self.signum = int(signum)
        self.detail = detail

    @property
    def exit_status(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def _handler(signum: int, frame: object) -> None:
    if os.getpid() != _state["pid"]:
        # A forked child (a decoding pool's worker) inherits the handler; it must end as the
        # signal says, quietly, as it would without equissl (Pool.terminate sends SIGTERM).
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if _state["defer"] and _state["pending"] is None:
        _state["pending"] = signum
        return
    raise Stop(signum)


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """Route SIGTERM and SIGINT to `Stop` while a command runs; the previous handlers return
    after it (so `equissl.app.cli.main` called from Python leaves its caller's handlers alone)."""
    previous = {signum: signal.getsignal(signum) for signum in HANDLED}
    _state["pid"] = os.getpid()
    for signum in HANDLED:
        signal.signal(signum, _handler)
    _state["installed"] = True
    try:
        yield
    finally:
        _state["installed"] = False
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold signals until `pending()` is read at a step boundary (training)."""
    _state["defer"], _state["pending"] = True, None
    try:
        yield
    finally:
        _state["defer"] = False
        signum = _state["pending"]
        _state["pending"] = None
        if isinstance(signum, int):
            raise Stop(signum)  # arrived after the last step boundary: stop now


def reclaim() -> None:
    """Take SIGTERM and SIGINT back where `installed()` is in force: Lightning installs its own
    SIGTERM handler when fitting starts, which would stop the run between two steps without a
    checkpoint. Outside `installed()` (equissl used from Python) the caller's handlers stay."""
    if not _state.get("installed"):
        return
    for signum in HANDLED:
        if signal.getsignal(signum) is not _handler:
            signal.signal(signum, _handler)


def pending() -> int | None:
    """The signal held since the last step boundary, if any."""
    signum = _state["pending"]
    return signum if isinstance(signum, int) else None


def clear() -> None:
    """Forget a held signal (it is being acted on)."""
    _state["pending"] = None
