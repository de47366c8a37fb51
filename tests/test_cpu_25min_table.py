"""benchmarks/cpu_25min.py's table: one row per run, then each method's mean ± sample std of the
linear probe (the runs themselves take 20 minutes each and are not a test)."""

import statistics
from pathlib import Path

from scripts import load_script

cpu_25min = load_script(Path("benchmarks/cpu_25min.py"))


def row(method, seed, linear, head=None):
    return {
        "method": method,
        "seed": seed,
        "linear_acc": linear,
        "knn_acc": linear - 4,
        "transform_acc": head,
        "train_seconds": 1000.4,
        "eval_seconds": 20.2,
        "wall_seconds": 1068.0,
    }


def test_table_rows_and_means():
    rows = [row("esimclr", 0, 53.8, 57.26), row("simclr", 0, 52.0), row("esimclr", 1, 54.6, 57.0)]
    lines = cpu_25min.table(rows).splitlines()
    assert lines[2] == "| esimclr | 0 | 53.80 | 49.80 | 57.26 | 1000 | 20 | 17.8 min |"
    assert lines[3] == "| simclr | 0 | 52.00 | 48.00 | — | 1000 | 20 | 17.8 min |"
    spread = statistics.stdev([53.8, 54.6])
    assert lines[5] == f"| **esimclr, mean** | | **54.20 ± {spread:.2f}** | | | | | |"
    assert lines[6] == "| **simclr, mean** | | **52.00** | | | | | |"  # one seed: no spread
