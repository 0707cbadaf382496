"""Runs a benchmark job in a fresh process and measures the memory that job holds, its child processes included.

A fresh (spawned) process per job makes each job's peak memory its own: nothing imported, cached or leaked by an
earlier job counts. The parent samples the resident memory of the job's whole process tree (Beam's worker
processes are children of the job) every `interval` seconds; the job also reports its own exact maximum, which
catches a spike between two samples. The peak is the larger of the two.

The job's own maximum is the kernel's high-water mark of its address space (`VmHWM`), not `getrusage`'s
`ru_maxrss`: a spawned child starts as a fork or vfork of the launcher, and Linux carries the launcher's
high-water mark into the child's `ru_maxrss` across exec, so every job would report at least the launcher's peak.
`VmHWM` belongs to the address space that exec creates, so it starts from nothing.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, wait
from typing import Any

import psutil

MB = 1024 * 1024


@dataclasses.dataclass
class Measured:
    """A job's return value, wall time and memory. `samples` are (unix time, MB of the process tree)."""

    result: Any
    seconds: float
    peak_memory_mb: float
    samples: list[tuple[float, float]]

    def peak_between(self, start: float, end: float) -> float:
        """The largest sampled memory from `start` to `end` (unix times), e.g. while one component ran; for a
        window shorter than the sampling interval, the last sample before its end."""
        inside = [mb for at, mb in self.samples if start <= at <= end]
        before = [mb for at, mb in self.samples if at < start]
        return max(inside) if inside else (before[-1] if before else 0.0)


def tree_memory_mb(root: psutil.Process) -> float:
    """Resident memory of `root` and all its descendants, summed (pages shared between them count each time)."""
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:  # a worker that ended between listing and reading
            pass
    return total / MB


def own_peak_mb() -> float:
    """This process's peak resident memory since its exec (Linux `VmHWM`); 0 where /proc has no such line, so that
    the parent's samples alone decide."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return 0.0


def _call_and_own_peak(function: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, float]:
    result = function(*args)
    return result, own_peak_mb()


def run_isolated(function: Callable[..., Any], *args: Any, interval: float = 0.2) -> Measured:
    """`function(*args)` in a new spawned process; its exceptions are raised here. `function` must be importable
    by name (a module-level function) and its arguments and result picklable."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        root = psutil.Process(pool.submit(os.getpid).result())
        started = time.time()
        future = pool.submit(_call_and_own_peak, function, args)
        samples = []
        while not future.done():
            try:
                samples.append((time.time(), tree_memory_mb(root)))
            except psutil.NoSuchProcess:
                break
            wait([future], timeout=interval)
        result, own_peak_mb = future.result()
        seconds = time.time() - started
    return Measured(result, seconds, max(own_peak_mb, *(mb for _, mb in samples), 0.0), samples)


def run_with_peak(function: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """`function(*args)` (which returns a dict) in a new process, as `run_isolated`; its result with the job's
    own `peak_memory_mb` added."""
    measured = run_isolated(function, *args)
    return {**measured.result, "peak_memory_mb": measured.peak_memory_mb}
