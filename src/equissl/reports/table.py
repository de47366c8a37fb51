"""Results tables: gather each run's results.json and write them as Markdown and CSV."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Iterable
from pathlib import Path

from equissl.errors import DataError, UserError
from equissl.reports.atomic import write_text_atomic

MISSING = "—"
IDENTIFIERS = ("seed",)  # numbers that name a run: listed in a group, never averaged
SAME_IN_GROUP = ("data",)  # a group mixing these would average unrelated numbers


def collect_results(run_dirs: Iterable[str | Path], filename: str = "results.json") -> list[dict]:
    """Read `<run_dir>/results.json` (or `filename`, e.g. the eval.json of a later `equissl eval`)
    of each run, in order; "name" defaults to the folder name.

    A missing file raises UserError naming it; a file that is not a JSON object raises DataError.
    """
    rows = []
    for run_dir in run_dirs:
        path = Path(run_dir) / filename
        if not path.is_file():
            raise UserError(f"missing results file: {path}")
        try:
            row = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{path} is not valid JSON: {err}") from None
        if not isinstance(row, dict):
            raise DataError(f"{path} must hold a JSON object, not {type(row).__name__}")
        row.setdefault("name", Path(run_dir).name)
        rows.append(row)
    return rows


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def _get(row: dict, column: str) -> object:
    """The row's value for `column`, with absent and NaN both read as None."""
    value = row.get(column)
    return None if isinstance(value, float) and math.isnan(value) else value


def _numeric_columns(rows: list[dict], columns: list[str]) -> set[str]:
    return {c for c in columns if any(_is_number(_get(row, c)) for row in rows)}


def _group_key(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def results_table(
    rows: list[dict], columns: list[str], *, group_by: str | None = None
) -> list[dict]:
    """The table's raw cells: one dict per row (or per group), absent and NaN values as None.

    Without `group_by`, each row keeps just `columns`. With it, rows sharing the `group_by` value
    become one row (groups in order of first appearance) holding `group_by`, "n" (the group size),
    and for each numeric column `<col>_mean` and `<col>_std` over the group's non-missing values;
    the std is the sample std (ddof=1), None with fewer than two values. An identifier column
    (`seed`) holds the group's distinct values as a list. A non-numeric column keeps its value
    when the whole group shares it, else None. Grouping runs on different datasets (`data`)
    raises UserError: their mean would mix unrelated numbers.
    """
    if not columns:
        raise UserError("a results table needs at least one column")
    if not rows:
        raise UserError("no runs to tabulate")
    if group_by is None:
        return [{c: _get(row, c) for c in columns} for row in rows]
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(_group_key(_get(row, group_by)), []).append(row)
    _check_comparable(groups.values(), group_by)
    others = [c for c in columns if c != group_by]
    numeric = _numeric_columns(rows, others) - set(IDENTIFIERS)
    table = []
    for members in groups.values():
        out = {group_by: _get(members[0], group_by), "n": len(members)}
        for c in others:
            values = [_get(row, c) for row in members]
            if c in numeric:
                nums = [float(v) for v in values if _is_number(v)]
                out[f"{c}_mean"] = statistics.fmean(nums) if nums else None
                out[f"{c}_std"] = statistics.stdev(nums) if len(nums) > 1 else None
            elif c in IDENTIFIERS:
                distinct = list(dict.fromkeys(v for v in values if v is not None))
                out[c] = distinct or None
            else:
                shared = len({_group_key(v) for v in values}) == 1
                out[c] = values[0] if shared else None
        table.append(out)
    return table


def _check_comparable(groups: Iterable[list[dict]], group_by: str) -> None:
    for members in groups:
        for column in SAME_IN_GROUP:
            values = list(dict.fromkeys(str(_get(row, column)) for row in members))
            if column != group_by and len(values) > 1:
                raise UserError(
                    f"group_by={group_by} would average runs on different {column} "
                    f"({', '.join(values)}) in group '{_get(members[0], group_by)}'; report each "
                    f"{column} separately or group_by={column}"
                )


def _format(value: object, decimals: bool = True) -> str:
    """A Markdown cell; numbers get 2 decimals when `decimals` (ints stay ints otherwise)."""
    if value is None:
        return MISSING
    if _is_number(value) and (decimals or isinstance(value, float)):
        return f"{value:.2f}"
    if isinstance(value, list | dict):
        value = json.dumps(value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(
    rows: list[dict],
    columns: list[str],
    *,
    title: str | None = None,
    group_by: str | None = None,
) -> str:
    """The table as Markdown text (no trailing newline): numbers with 2 decimals (columns of
    ints only without), missing values as "—".

    Grouped tables (see `results_table`) show `group_by`, n, then "mean ± std" per numeric column
    (just the mean when the std is undefined). Numeric columns are right-aligned.
    """
    table = results_table(rows, columns, group_by=group_by)
    if group_by is None:
        header = list(columns)
        numeric = _numeric_columns(table, header)
        # a column of ints only (seed, epochs) is shown without decimals
        decimals = {c: any(isinstance(row[c], float) for row in table) for c in header}
        cells = [[_format(row[c], decimals[c]) for c in header] for row in table]
    else:
        others = [c for c in columns if c != group_by]
        header = [group_by, "n", *others]
        numeric = {"n"} | {c for c in others if table and f"{c}_mean" in table[0]}
        cells = [
            [_format(row[group_by], False), str(row["n"])]
            + [_cell(row, c, c in numeric) for c in others]
            for row in table
        ]
    lines = [f"## {title}", ""] if title else []
    lines.append("| " + " | ".join(_format(c, False) for c in header) + " |")
    lines.append("|" + "|".join("---:" if c in numeric else "---" for c in header) + "|")
    lines.extend("| " + " | ".join(row) + " |" for row in cells)
    return "\n".join(lines)


def _cell(row: dict, column: str, numeric: bool) -> str:
    if numeric:
        return _mean_std(row, column)
    if column in IDENTIFIERS and isinstance(row[column], list):
        return ", ".join(_format(v, False) for v in row[column])
    return _format(row[column])


def _mean_std(row: dict, column: str) -> str:
    mean, std = row[f"{column}_mean"], row[f"{column}_std"]
    if mean is None or std is None:
        return _format(mean)
    return f"{mean:.2f} ± {std:.2f}"


def csv_text(table: list[dict]) -> str:
    """CSV of `results_table` output: full-precision numbers, None as an empty cell."""
    buf = io.StringIO()
    header = list(table[0])
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in table:
        writer.writerow(
            "" if v is None else json.dumps(v) if isinstance(v, list | dict) else v
            for v in (row[c] for c in header)
        )
    return buf.getvalue()


def write_table(
    rows: list[dict],
    columns: list[str],
    out_stem: str | Path,
    *,
    title: str | None = None,
    group_by: str | None = None,
) -> tuple[Path, Path]:
    """Write `<out_stem>.md` (see `markdown_table`) and `<out_stem>.csv` (raw numbers; grouped
    tables have `<col>_mean` and `<col>_std` columns), each atomically. Returns (md, csv) paths.
    """
    md_text = markdown_table(rows, columns, title=title, group_by=group_by) + "\n"
    csv_body = csv_text(results_table(rows, columns, group_by=group_by))
    md_path = write_text_atomic(f"{out_stem}.md", md_text)
    csv_path = write_text_atomic(f"{out_stem}.csv", csv_body)
    return md_path, csv_path
