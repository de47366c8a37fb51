"""Moved to `equissl.app.cli` (issue 17: the tool in its own wing); this name is kept for one
release and is the same module object, so attributes set on it reach the tool.

Unlike the other old names it warns about nothing: it is the entry point of `equissl` scripts
installed before the move (`equissl.cli:main`), which would print the warning on every command.
"""

import sys

from equissl.app import cli as _moved

if __name__ == "__main__":  # python -m equissl.cli
    sys.exit(_moved.main())
sys.modules[__name__] = _moved
