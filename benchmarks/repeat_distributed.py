"""Run the two-process gloo tests (tests/test_distributed.py) many times, each in a fresh pytest.

Why: a rank used to abort at exit ("terminate called without an active exception") in about
one run in six, which a single green run cannot show. A fresh interpreter per repeat gives each
run its own process start-up and teardown, the way CI sees them. Prints pass/fail per repeat
(a failure with its first error line) and "passed K of N"; exits non-zero if any failed.

    .venv/bin/python benchmarks/repeat_distributed.py --repeats 30
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/test_distributed.py", "-q", "-p", "no:cacheprovider"]
COMMAND = [sys.executable, "-m", "pytest", *TESTS]


def run_once() -> str:
    """One pytest run of the distributed tests: "" if it passed, else why it failed."""
    done = subprocess.run(COMMAND, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return ""
    lines = (done.stdout + done.stderr).splitlines()
    errors = [line.removeprefix("E").strip() for line in lines if line.startswith("E ")]
    return errors[0] if errors else f"pytest exit code {done.returncode}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=30)
    args = p.parse_args()
    passed = 0
    start = time.perf_counter()
    for i in range(1, args.repeats + 1):
        why = run_once()
        passed += not why
        print(f"repeat {i:3d}: " + (f"FAIL ({why})" if why else "pass"), flush=True)
    wall = time.perf_counter() - start
    print(f"passed {passed} of {args.repeats} ({wall:.0f} s wall)")
    sys.exit(0 if passed == args.repeats else 1)


if __name__ == "__main__":
    main()
