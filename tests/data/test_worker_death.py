"""A streamed run's DataLoader workers die with the trainer (a SIGKILL leaves none behind)."""

import os
import signal
import subprocess
import sys
import time

import pytest

# The parent forks a worker that calls die_with_parent, prints the worker's pid, then waits.
PARENT = """
import os, sys, time
from equissl.data.stream import die_with_parent
parent = os.getpid()
pid = os.fork()
if pid == 0:
    if sys.argv[1] == "late":  # the parent is killed before the worker's init runs
        time.sleep(2)
    if sys.argv[1] != "none":
        die_with_parent(0, parent=parent)
    time.sleep(60)
    os._exit(0)
print(pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has died
    except FileNotFoundError:
        return False


def _orphan_after_kill(init: str) -> bool:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, init], stdout=subprocess.PIPE, text=True
    )
    worker = int(parent.stdout.readline())
    if init == "init":
        time.sleep(0.5)  # the worker's prctl is done
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    end = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < end:
        time.sleep(0.05)
    alive = _alive(worker)
    if alive:
        os.kill(worker, signal.SIGKILL)
    return alive


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_worker_dies_with_its_killed_parent_and_an_unprepared_one_does_not():
    assert not _orphan_after_kill("init")
    assert not _orphan_after_kill("late")  # its parent died first: it exits in its init
    assert _orphan_after_kill("none")  # mutation check: without it the worker outlives it
