"""One generation at a time on this machine, across processes.

llama.cpp's threads spin while they wait for each other. Two processes each running as many threads
as the machine has cores (the default) make each other's threads wait for a core they spin on: two
`rag ask` at once on two cores decoded at 1.6 tokens/s each against 63.5 alone, 43 s an answer
instead of 2 (docs/performance.md, "Two rag processes generating at once"). Taking turns, the second
answer comes after the first, both at full speed.

A process holds the turn while any of its generations runs; inside one process the turn is counted,
not waited for (the first model's stream and the second model's call order themselves with each
model's own lock). A turn not given within WAIT_S is taken anyway, as before this existed: a process
that stopped reading a stream half-way must not stall every other one for good.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

WAIT_S = 120.0
POLL_S = 0.05


class MachineTurn:
    """An exclusive lock on a file (flock), held by this process while its count is above zero."""

    def __init__(self, path: Path, wait_s: float = WAIT_S):
        self.path, self.wait_s = Path(path), wait_s
        self._guard = threading.Lock()  # held while the count changes, and while the turn is awaited
        self._count = 0
        self._fd: int | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._guard:
            if self._count == 0:
                self._fd = self._take()
            self._count += 1
        try:
            yield
        finally:
            with self._guard:
                self._count -= 1
                if self._count == 0 and self._fd is not None:
                    os.close(self._fd)  # closing the file releases its lock
                    self._fd = None

    def _take(self) -> int | None:
        """The locked file's descriptor, or None where files cannot be locked or the wait ran out."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return None
        deadline, told = time.monotonic() + self.wait_s, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if not told:
                    log.warning("waiting for another rag process on this machine to finish generating "
                                "(RAG_THREADS=1 in both shares the cores instead)")
                    told = True
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return None
                time.sleep(POLL_S)
            except OSError:  # a file system without locks: generate as before
                os.close(fd)
                return None


_turns: dict[Path, MachineTurn] = {}
_turns_lock = threading.Lock()


def turn_for(cache_dir: Path, n_threads: int) -> MachineTurn | None:
    """The process's one MachineTurn (every model of the process shares it) when its llama.cpp threads
    use every core, as by default; None when RAG_THREADS leaves cores to other processes."""
    if n_threads < (os.cpu_count() or 1):
        return None
    path = Path(cache_dir) / "generating.lock"
    with _turns_lock:
        return _turns.setdefault(path, MachineTurn(path))
