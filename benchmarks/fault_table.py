"""The reliability table: every fault-injection case of tests/faults/cases.py, and the signal
scenarios, run against the real CLI in subprocesses; writes the table, its counts and how it was
made between the `<!-- cases -->` and `<!-- /cases -->` marks of docs/results/reliability.md.

    .venv/bin/python benchmarks/fault_table.py [--out docs/results/reliability.md]

Each row: family, case, exit status, the line printed on stderr, and whether the contract held
(the expected status, one line, no temporary file left, nothing that existed before changed or
lost, and the case's own check of what is on disk).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "faults"))

from cases import (  # noqa: E402 - after the path set-up
    CASES,
    LONG,
    Case,
    Context,
    leftovers,
    release_held,
    signal_before_training,
    signal_run,
    snapshot,
    step_losses,
    tiny,
    trained_run,
)

RUNNER = (
    "import json, sys; sys.path.insert(0, {faults!r}); from cases import apply_fault; "
    "apply_fault({fault!r}); from equissl.app.cli import main; sys.exit(main(json.loads({argv!r})))"
)


def run_case(case: Case, tmp: Path, trained: Path) -> dict:
    ctx = Context(tmp, trained)
    argv = case.argv(ctx)
    before = snapshot(tmp)
    code = RUNNER.format(
        faults=str(ROOT / "tests" / "faults"), fault=case.fault, argv=json.dumps(argv)
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=600
        )
    finally:
        release_held()
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    problems = []
    if done.returncode != case.status:
        problems.append(f"status {done.returncode}, not {case.status}")
    expect = case.expect.replace("$TMP", str(tmp))
    if case.status and (len(lines) != 1 or expect not in lines[0]):
        problems.append(f"{len(lines)} lines" if len(lines) != 1 else "unexpected line")
    if not case.status and lines:
        problems.append("printed on stderr")
    if leftovers(tmp):
        problems.append("temporary file left")
    if case.keeps_files:
        after = snapshot(tmp)
        if any(after.get(k) != v for k, v in before.items()):
            problems.append("changed or lost a file")
    if case.check is not None:
        try:
            case.check(ctx)
        except AssertionError as exc:
            problems.append(f"check: {exc}")
    return {
        "family": case.family,
        "case": case.name,
        "status": done.returncode,
        "line": lines[0] if len(lines) == 1 else " / ".join(lines[-3:]) or "(nothing)",
        "ok": not problems,
        "problems": problems,
    }


def signal_rows(tmp: Path) -> list[dict]:
    """SIGTERM and SIGINT mid-training, SIGTERM at start-up, SIGKILL mid-epoch; each resumed
    run compared step by step with an uninterrupted one."""
    from equissl.app.cli import main

    assert main(tiny(tmp, *LONG, name="whole")) == 0
    whole = step_losses(tmp / "runs" / "whole")
    rows = []
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
        name = signal.Signals(signum).name
        status, err, run = signal_run(tmp, signum, name.lower())
        lines = [line for line in err.splitlines() if line.strip()]
        rerun = tiny(tmp, *LONG, name=name.lower())
        again = subprocess.run(
            [sys.executable, "-m", "equissl.app.cli", *rerun], capture_output=True
        )
        same = again.returncode == 0 and step_losses(run) == whole
        killed = signum == signal.SIGKILL  # no handler runs: nothing printed, status -9
        rows.append(
            {
                "family": "signals",
                "case": f"{name} mid-training, then the same command again",
                "status": status,
                "line": (lines[0] if len(lines) == 1 else " / ".join(lines)) or "(killed)",
                "ok": same
                and (status == -9 if killed else status == 128 + signum and len(lines) == 1),
                "problems": [] if same else ["the resumed run differs from the uninterrupted one"],
            }
        )
    status, err = signal_before_training(tmp)
    lines = [line for line in err.splitlines() if line.strip()]
    rows.append(
        {
            "family": "signals",
            "case": "SIGTERM during start-up",
            "status": status,
            "line": lines[0] if len(lines) == 1 else " / ".join(lines),
            "ok": status == 143 and len(lines) == 1,
            "problems": [],
        }
    )
    return rows


def markdown(rows: list[dict]) -> str:
    head = "| family | case | exit | the line printed | held |\n|---|---|---:|---|:---:|\n"
    body = "".join(
        f"| {r['family']} | {r['case']} | {r['status']} | `{r['line'].replace('|', '/')}` | "
        f"{'yes' if r['ok'] else 'NO: ' + '; '.join(r['problems'])} |\n"
        for r in rows
    )
    return head + body


START, END = "<!-- cases -->", "<!-- /cases -->"


def provenance() -> str:
    """The command, machine, date and commit of this table."""
    import os
    import platform
    from datetime import date

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return (
        "Command: `.venv/bin/python benchmarks/fault_table.py`. "
        f"Machine: {os.cpu_count()} CPU cores, no GPU, {platform.system()} "
        f"{platform.machine()}, Python {platform.python_version()}. Date: {date.today()}. "
        f"Commit: `{commit or 'unknown'}`{' with uncommitted changes' if dirty else ''}."
    )


def write_into(path: Path, section: str) -> None:
    """Replace the text between START and END in `path` (append the marks if absent)."""
    text = path.read_text() if path.is_file() else ""
    block = f"{START}\n{section}{END}"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text + ("\n" if text else "") + block + "\n"
    path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "reliability.md"))
    args = parser.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        trained = trained_run(scratch / "trained")
        rows = []
        for i, case in enumerate(CASES):
            tmp = scratch / f"case{i}"
            tmp.mkdir()
            rows.append(run_case(case, tmp, trained))
            print(f"{'ok ' if rows[-1]['ok'] else 'NO '} {case.id}: {rows[-1]['line']}", flush=True)
        signals_dir = scratch / "signals"
        signals_dir.mkdir()
        rows += signal_rows(signals_dir)
        for row in rows:  # the scratch folder's random name says nothing
            row["line"] = row["line"].replace(str(scratch), "$TMP")
    held = sum(r["ok"] for r in rows)
    statuses = {s: sum(r["status"] == s for r in rows) for s in sorted({r["status"] for r in rows})}
    summary = (
        f"**{held} of {len(rows)} cases held** (expected status, one line, no temporary file "
        "left, nothing changed or lost, the case's own check). Exit statuses: "
        + ", ".join(f"{s}: {n}" for s, n in statuses.items())
        + f". Tracebacks: {sum('Traceback' in r['line'] for r in rows)}. "
        f"{time.perf_counter() - t0:.0f} s wall."
    )
    write_into(Path(args.out), f"{provenance()}\n\n{summary}\n\n{markdown(rows)}")
    print(summary)
    return 0 if held == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
