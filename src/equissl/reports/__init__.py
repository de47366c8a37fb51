"""Reports across runs: results tables (Markdown and CSV) and training-curve plots."""

from equissl.reports.curves import plot_curves, read_metrics
from equissl.reports.table import collect_results, markdown_table, results_table, write_table

__all__ = [
    "collect_results",
    "markdown_table",
    "plot_curves",
    "read_metrics",
    "results_table",
    "write_table",
]
