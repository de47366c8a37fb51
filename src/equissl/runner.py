"""Moved to `equissl.app.runner` (issue 17: the tool in its own wing); this name is kept for one
release and is the same module object, so attributes set on it reach the tool."""

import sys
import warnings

from equissl.app import runner as _moved

warnings.warn(
    "equissl.runner moved to equissl.app.runner; import it from there",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _moved
