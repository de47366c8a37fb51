"""One-line warnings on stderr, shown even where the CLI silences Python's `warnings`."""

from __future__ import annotations

import sys

PREFIX = "equissl: warning: "


def warn(message: str) -> None:
    """Print `equissl: warning: <message>` as one line on stderr."""
    line = " ".join(message.splitlines())
    print(f"{PREFIX}{line}", file=sys.stderr, flush=True)
