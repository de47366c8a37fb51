"""Reports across runs: results tables (Markdown and CSV), training-curve and hue-sensitivity
plots."""

from equissl.reports.curves import plot_curves, read_metrics
from equissl.reports.sensitivity import plot_rows_sensitivity, plot_sensitivity
from equissl.reports.table import collect_results, markdown_table, results_table, write_table

__all__ = [
    "collect_results",
    "markdown_table",
    "plot_curves",
    "plot_rows_sensitivity",
    "plot_sensitivity",
    "read_metrics",
    "results_table",
    "write_table",
]
