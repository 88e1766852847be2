"""A one-shot command's start-up, timed from the process's own start (`rag ask --json`: timings.startup).

A user waits from the moment the process starts, interpreter and imports included: the stages are
measured on that clock, so `rag bench --cold` can say where the time to the first token goes.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager


def process_age() -> float | None:
    """Seconds since this process started, by the kernel's clock (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


class Stages:
    """Named durations and moments of one command, on one clock whose zero is the process start
    (or this object's creation where the start cannot be read); 10 ms resolution at the start."""

    def __init__(self) -> None:
        self.zero = time.perf_counter() - (process_age() or 0.0)
        self.times: dict[str, float] = {}

    def age(self) -> float:
        return time.perf_counter() - self.zero

    def mark(self, name: str) -> None:
        """Record the moment `name` happened, in seconds since the process started."""
        self.times.setdefault(name, round(self.age(), 4))

    @contextmanager
    def timed(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = round(time.perf_counter() - t0, 4)


def import_bm25s_for_search() -> None:
    """Import bm25s without scipy when nothing imported either yet.

    bm25s imports scipy.sparse (0.26 s of CPU here) for one thing, building the score matrix of a
    new index faster; reading a saved index and scoring a query is numpy. A process that only
    answers never builds one, and bm25s falls back to its numpy builder when scipy is missing."""
    if "bm25s" in sys.modules or "scipy.sparse" in sys.modules:
        return
    sys.modules["scipy.sparse"] = None  # makes `import scipy.sparse` raise ImportError
    try:
        import bm25s  # noqa: F401
    finally:
        del sys.modules["scipy.sparse"]
