"""A server process on a free loopback port: finding the port, starting the process, waiting until it
answers, stopping it. `rag bench --app` measures the chat app this way, and the tests start `rag
serve` and llama.cpp's server with it (tests/helpers.py)."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from rag.errors import RagError

T = TypeVar("T")


class ServerError(RagError):
    """A server started here exited or did not answer in time; the message ends with its last output."""


def free_port() -> int:
    """A loopback TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(cmd: list[str], ready: Callable[[], T], *, name: str, env: dict | None = None, cwd: Path | None = None,
            ready_s: float = 180.0, poll_s: float = 0.3) -> Iterator[tuple[subprocess.Popen, T]]:
    """cmd started as a server; the block runs once ready() returns a true value (an exception or a
    false value means "not yet"), and gets (the process, that value). Fails with the server's last
    output if it exits first or is not ready within ready_s seconds; stopped after the block
    (terminate, then kill after 20 s). Its output goes to a file, so it never blocks on a full pipe."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)

        def tail() -> str:
            log.seek(0)
            return log.read().decode(errors="replace")[-2000:]

        try:
            deadline = time.monotonic() + ready_s
            while True:
                if proc.poll() is not None:
                    raise ServerError(f"{name} exited with {proc.returncode}: {' '.join(cmd)}\n{tail()}")
                try:
                    answer = ready()
                except Exception:  # noqa: BLE001 - not listening yet
                    answer = None
                if answer:
                    break
                if time.monotonic() > deadline:
                    raise ServerError(f"{name} did not answer within {ready_s:g} s: {' '.join(cmd)}\n{tail()}")
                time.sleep(poll_s)
            yield proc, answer
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
