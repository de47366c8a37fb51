"""Seeds derived from names: the same key gives the same seed in every process and session."""

from __future__ import annotations

import hashlib


def hashed_seed(key: str) -> int:
    """A 63-bit generator seed hashed from `key` (blake2b), independent of Python's hash salt."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") >> 1
