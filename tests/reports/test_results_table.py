import json
import statistics

import pytest

from equissl.errors import DataError, UserError
from equissl.reports import (
    collect_results,
    markdown_table,
    results_table,
    write_table,
)

ROWS = [
    {"name": "simclr-s0", "method": "simclr", "seed": 0, "linear_acc": 61.2, "knn_acc": 55.0},
    {"name": "simclr-s1", "method": "simclr", "seed": 1, "linear_acc": 62.0, "knn_acc": None},
    {"name": "essl-s0", "method": "essl", "seed": 0, "linear_acc": 65.5},
    {"name": "simclr-s2", "method": "simclr", "seed": 2, "linear_acc": 60.1, "knn_acc": 54.0},
]
COLUMNS = ["name", "seed", "linear_acc", "knn_acc"]


def write_run(root, name, results):
    run = root / name
    run.mkdir()
    (run / "results.json").write_text(json.dumps(results))
    return run


def test_collect_results_reads_in_order_and_names_runs(tmp_path):
    a = write_run(tmp_path, "a", {"linear_acc": 1.5})
    b = write_run(tmp_path, "b", {"name": "custom", "knn_acc": None})
    assert collect_results([a, str(b)]) == [
        {"linear_acc": 1.5, "name": "a"},
        {"name": "custom", "knn_acc": None},
    ]


def test_collect_results_errors_name_the_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"empty/results\.json"):
        collect_results([tmp_path / "empty"])
    bad = write_run(tmp_path, "bad", {})
    (bad / "results.json").write_text("{not json")
    with pytest.raises(DataError, match="bad"):
        collect_results([bad])


def test_markdown_ungrouped_exact():
    text = markdown_table(ROWS, COLUMNS, title="Results")
    assert text == "\n".join(
        [
            "## Results",
            "",
            "| name | seed | linear_acc | knn_acc |",
            "|---|---:|---:|---:|",
            "| simclr-s0 | 0 | 61.20 | 55.00 |",
            "| simclr-s1 | 1 | 62.00 | — |",
            "| essl-s0 | 0 | 65.50 | — |",
            "| simclr-s2 | 2 | 60.10 | 54.00 |",
        ]
    )


def test_grouped_mean_and_sample_std():
    table = results_table(ROWS, ["method", "linear_acc", "knn_acc"], group_by="method")
    simclr = [61.2, 62.0, 60.1]
    assert [row["method"] for row in table] == ["simclr", "essl"]
    assert table[0]["n"] == 3 and table[1]["n"] == 1
    assert table[0]["linear_acc_mean"] == pytest.approx(sum(simclr) / 3)
    mean = sum(simclr) / 3
    sample_std = (sum((v - mean) ** 2 for v in simclr) / (3 - 1)) ** 0.5  # ddof=1
    assert table[0]["linear_acc_std"] == pytest.approx(sample_std)
    assert table[0]["knn_acc_mean"] == 54.5  # the missing value is skipped
    assert table[0]["knn_acc_std"] == pytest.approx(statistics.stdev([55.0, 54.0]))
    assert table[1] == {
        "method": "essl",
        "n": 1,
        "linear_acc_mean": 65.5,
        "linear_acc_std": None,
        "knn_acc_mean": None,
        "knn_acc_std": None,
    }


def test_write_grouped_table_exact(tmp_path):
    md, csv = write_table(
        ROWS, ["method", "linear_acc", "knn_acc"], tmp_path / "out" / "summary", group_by="method"
    )
    assert (md.name, csv.name) == ("summary.md", "summary.csv")
    std = statistics.stdev([61.2, 62.0, 60.1])
    assert md.read_text() == (
        "| method | n | linear_acc | knn_acc |\n"
        "|---|---:|---:|---:|\n"
        f"| simclr | 3 | 61.10 ± {std:.2f} | 54.50 ± 0.71 |\n"
        "| essl | 1 | 65.50 | — |\n"
    )
    mean = statistics.fmean([61.2, 62.0, 60.1])
    assert csv.read_text() == (
        "method,n,linear_acc_mean,linear_acc_std,knn_acc_mean,knn_acc_std\n"
        f"simclr,3,{mean!r},{std!r},54.5,{statistics.stdev([55.0, 54.0])!r}\n"
        "essl,1,65.5,,,\n"
    )
    assert sorted(p.name for p in md.parent.iterdir()) == ["summary.csv", "summary.md"]


def test_write_ungrouped_csv_keeps_raw_numbers(tmp_path):
    rows = [{"name": "a|b", "acc": 61.23456, "nan": float("nan")}, {"name": "c"}]
    md, csv = write_table(rows, ["name", "acc", "nan"], tmp_path / "t")
    assert csv.read_text() == "name,acc,nan\na|b,61.23456,\nc,,\n"
    assert "| a\\|b | 61.23 | — |" in md.read_text()


def test_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_table(ROWS, COLUMNS, tmp_path / "t")
    assert list(tmp_path.iterdir()) == []


def test_bad_tables_raise_user_error():
    with pytest.raises(UserError):
        results_table(ROWS, [])
    with pytest.raises(UserError):
        results_table([], COLUMNS)


def test_grouped_seeds_are_listed_not_averaged():
    table = results_table(ROWS, ["method", "seed", "linear_acc"], group_by="method")
    assert table[0]["seed"] == [0, 1, 2] and "seed_mean" not in table[0]
    text = markdown_table(ROWS, ["method", "seed", "linear_acc"], group_by="method")
    assert "| simclr | 3 | 0, 1, 2 | 61.10 ± 0.95 |" in text


def test_grouping_runs_on_different_datasets_is_refused():
    rows = [
        {"method": "simclr", "data": "digits", "linear_acc": 90.0},
        {"method": "simclr", "data": "cifar10", "linear_acc": 40.0},
    ]
    with pytest.raises(UserError, match="would average runs on different data .digits, cifar10."):
        results_table(rows, ["method", "linear_acc"], group_by="method")
    by_data = results_table(rows, ["data", "linear_acc"], group_by="data")
    assert [row["linear_acc_mean"] for row in by_data] == [90.0, 40.0]
