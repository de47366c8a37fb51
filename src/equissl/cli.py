"""Moved to `equissl.app.cli` (issue 17: the tool in its own wing); this name is kept for one
release and is the same module object, so attributes set on it reach the tool."""

import sys
import warnings

from equissl.app import cli as _moved

warnings.warn(
    "equissl.cli moved to equissl.app.cli; import it from there",
    DeprecationWarning,
    stacklevel=2,
)
if __name__ == "__main__":  # python -m equissl.cli
    sys.exit(_moved.main())
sys.modules[__name__] = _moved
