"""benchmarks/pixel_baseline.py (the raw-pixel floor of the results tables) runs and writes a
results.json that `equissl report` reads; it broke once when a helper it imported moved."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "pixel_baseline.py"


def test_pixel_baseline_runs_and_writes_a_report_row(tmp_path):
    spec = importlib.util.spec_from_file_location("pixel_baseline", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.main(["smoke", f"out_dir={tmp_path}", "name=px"])
    written = json.loads((tmp_path / "px" / "results.json").read_text())
    assert written == results and written["method"] == "raw-pixels"
    assert 0 <= written["linear_acc"] <= 100 and 0 <= written["knn_acc"] <= 100
