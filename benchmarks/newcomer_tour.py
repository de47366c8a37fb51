"""The README's quick tour as a newcomer meets it: a fresh clone, its two set-up commands' first
(`make demo`), then every command of the tour in order, as written, each timed and its output
kept; writes the transcript (docs/results/newcomer.md).

    .venv/bin/python benchmarks/newcomer_tour.py --clone /tmp/newcomer --out docs/results/newcomer.md
"""

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEEP = 30  # lines kept at each end of a long output


def tour_commands(readme: str) -> list[list[str]]:
    """The commands of the README's quick-tour block, continuation lines joined, comments and
    the shell's quotes removed (shlex, as the shell would)."""
    section = readme.split("## Quick tour", 1)[1]
    block = section.split("```", 2)[1]
    joined = re.sub(r"\\\n\s*", " ", block)
    return [shlex.split(line, comments=True) for line in joined.splitlines() if line.strip()]


def cut(text: str) -> str:
    """A long output's first and last KEEP lines."""
    lines = text.rstrip("\n").splitlines()
    if len(lines) <= 2 * KEEP + 5:
        return "\n".join(lines)
    gap = f"[... {len(lines) - 2 * KEEP} lines cut ...]"
    return "\n".join([*lines[:KEEP], gap, *lines[-KEEP:]])


def run(argv: list[str], clone: Path, env: dict) -> dict:
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=clone, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)  # fmt: skip
    wall = time.perf_counter() - t0
    shown = " ".join(shlex.quote(a) for a in argv)
    print(f"exit {done.returncode} {wall:7.1f} s  {shown}", flush=True)
    return {"command": shown, "exit": done.returncode, "seconds": wall, "output": done.stdout}


def markdown(steps: list[dict], head: dict) -> str:
    ok = sum(s["exit"] == 0 for s in steps)
    total = sum(s["seconds"] for s in steps)
    out = [
        "# A newcomer's quick tour",
        "",
        "The README's set-up and quick tour run on a fresh clone, in order and as written, by",
        "`benchmarks/newcomer_tour.py`: each command's exit status, wall time and what it printed",
        "(stdout and stderr together; long outputs cut in the middle).",
        "",
        f"- **Command**: `{head['invocation']}`",
        f"- **Date**: {head['date']}. **Commit**: `{head['commit']}` (the fresh clone:"
        f" `git clone {ROOT} {head['clone']}`).",
        f"- **Machine**: {head['machine']}.",
        "- **How**: the README's `../shared/data` is the shared data folder beside the clone;"
        " the tour's commands ran with the clone's `.venv/bin` first on the PATH (what"
        " `source .venv/bin/activate` does), not on a terminal (so progress comes as plain"
        " lines, one per epoch and per phase, as in a log or CI).",
        "",
        f"**{ok} of {len(steps)} commands exited 0; {total / 60:.1f} min in all.**",
        "",
        "| # | command | exit | wall time |",
        "|---:|---|---:|---:|",
    ]
    for i, s in enumerate(steps):
        short = s["command"] if len(s["command"]) <= 90 else s["command"][:87] + "..."
        out.append(f"| {i} | `{short}` | {s['exit']} | {s['seconds']:.0f} s |")
    for i, s in enumerate(steps):
        out += ["", f"### {i}. `$ {s['command']}`", "", f"exit {s['exit']}, {s['seconds']:.1f} s"]
        out += ["", "```", cut(s["output"]), "```"]
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clone", type=Path, required=True, help="where to clone (emptied first)")
    p.add_argument("--out", type=Path, required=True, help="the transcript (markdown)")
    p.add_argument("--machine", default=f"{os.cpu_count()} CPU cores ({platform.machine()})")
    args = p.parse_args()
    clone = args.clone.resolve()
    data = clone.parent / "shared" / "data" / "cifar10-jpeg.zip"
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    if not data.exists():
        raise SystemExit(f"the tour reads {data}: link the shared folder beside the clone")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone,
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    start = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CI")}
    steps = [run(["make", "demo"], clone, env)]
    env["PATH"] = f"{clone / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
    steps += [run(argv, clone, env) for argv in tour_commands((clone / "README.md").read_text())]
    head = {
        "invocation": " ".join(["python", *sys.argv]),
        "date": f"{start} to {time.strftime('%H:%M UTC', time.gmtime())}",
        "commit": commit,
        "clone": clone,
        "machine": args.machine,
    }
    args.out.write_text(markdown(steps, head))
    rows = [{k: s[k] for k in ("command", "exit", "seconds")} for s in steps]
    args.out.with_suffix(".json").write_text(json.dumps({**head, "clone": str(clone),
                                                        "steps": rows}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
