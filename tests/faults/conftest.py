"""cases.py is shared with benchmarks/fault_table.py: importable by its plain name."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
