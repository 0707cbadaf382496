"""A job's peak memory includes its child processes; its result and errors come back to the caller."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from benchmarks import process

MB = 1024 * 1024


def hold_memory(own_mb: int, child_mb: int, seconds: float) -> str:
    """Holds `own_mb` itself and `child_mb` in a child process, both for `seconds`."""
    block = b"x" * (own_mb * MB)  # filled, so the pages are resident
    child = subprocess.Popen([sys.executable, "-c", f"import time; b = b'x' * {child_mb * MB}; time.sleep({seconds})"])
    time.sleep(seconds)
    child.wait()
    return f"held {len(block) // MB} MB"


def allocate(mb: int) -> int:
    block = b"x" * (mb * MB)
    return len(block) // MB


def fail() -> None:
    raise ValueError("the job's own error")


def test_peak_memory_counts_the_child_processes():
    measured = process.run_isolated(hold_memory, 150, 250, 2.0, interval=0.1)
    assert measured.result == "held 150 MB"
    # The job alone peaks at ~150 MB plus the interpreter (~20 MB); only with its child can the tree pass 380 MB.
    assert measured.peak_memory_mb > 380
    assert measured.seconds >= 2.0
    start, end = measured.samples[0][0], measured.samples[-1][0]
    assert measured.peak_between(start, end) == max(mb for _, mb in measured.samples)


def test_the_peak_is_the_jobs_own_not_the_launchers():
    held_by_launcher = b"y" * (1500 * MB)  # the launcher's high-water mark, which a forked child's ru_maxrss inherits
    measured = process.run_isolated(allocate, 100)
    assert measured.result == 100 and len(held_by_launcher) == 1500 * MB
    # 100 MB plus the interpreter, psutil and the test module's imports: far below the launcher's 1.5 GB.
    assert 100 < measured.peak_memory_mb < 400


def test_a_window_between_two_samples_reads_the_sample_before_it():
    measured = process.Measured(None, 1.0, 300.0, [(10.0, 100.0), (10.2, 300.0), (10.4, 200.0)])
    assert measured.peak_between(10.0, 10.4) == 300.0
    assert measured.peak_between(10.25, 10.3) == 300.0
    assert measured.peak_between(9.0, 9.5) == 0.0


def test_the_jobs_exception_is_raised_to_the_caller():
    with pytest.raises(ValueError, match="the job's own error"):
        process.run_isolated(fail)
