"""The CPU allocator setting: glibc keeps freed activations for the next step."""

import subprocess
import sys

import pytest

from equissl.app.config import build_config
from equissl.app.cpu import tune_allocator
from equissl.errors import ConfigError

# A child process: a 48 MiB buffer (above glibc's largest mmap threshold) freed and allocated
# again 20 times; with `reuse` most of its pages stay mapped from one allocation to the next.
PROBE = """
import resource, sys
from equissl.app.cpu import tune_allocator
changed = tune_allocator(sys.argv[1])
import torch
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    torch.ones(12 * 2**20)
before = faults()
for _ in range(20):
    torch.ones(12 * 2**20)
print(changed, faults() - before)
"""


def _faults(mode: str) -> tuple[bool, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0] == "True", int(out[1])


def test_reuse_stops_the_page_faults_of_a_buffer_freed_and_allocated_again():
    changed, reused = _faults("reuse")
    if not changed:
        pytest.skip("not glibc: mallopt is unavailable")  # not the CI machine (glibc Linux)
    _, system = _faults("system")
    pages = 48 * 2**20 // 4096
    assert system > 20 * pages * 0.9  # every allocation faults its 12,288 pages in again
    assert reused * 2 < system  # measured: 49,152-86,016 against 245,780 (3x was flaky)


def test_modes_are_checked():
    assert tune_allocator("system") is False
    with pytest.raises(ValueError, match="unknown allocator mode 'fast'"):
        tune_allocator("fast")
    with pytest.raises(ConfigError, match="trainer.cpu_allocator"):
        build_config([], ["trainer.cpu_allocator=fast"])
