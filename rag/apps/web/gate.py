"""One model call at a time, and a bounded line of waiting requests (no Gradio here)."""

from __future__ import annotations

import threading

from rag.errors import BusyError

# Requests allowed to wait for the model while one is answered; beyond that users get "busy" at
# once instead of an unbounded wait.
DEFAULT_MAX_WAITING = 8


class ModelGate:
    """First come, first served access to the one model; at most max_waiting requests wait.

    `lanes` requests are answered at once: 1 for the in-process model, more for a model server,
    which batches them (RAG_REMOTE_PARALLEL).

    Gradio's own queue would also serialise calls, but a full Gradio queue answers with a generic
    error; this gate lets a waiting user see their place in line and a full line say "busy".
    """

    def __init__(self, max_waiting: int = DEFAULT_MAX_WAITING, lanes: int = 1):
        self.max_waiting = max_waiting
        self.lanes = max(1, lanes)
        self._line: list[object] = []  # the first `lanes` hold the model
        self._cond = threading.Condition()

    def join(self) -> object:
        with self._cond:
            if len(self._line) >= self.lanes + self.max_waiting:
                raise BusyError(f"the assistant is busy ({len(self._line)} questions in progress or waiting); try again in a minute")
            ticket = object()
            self._line.append(ticket)
            return ticket

    def wait(self, ticket: object, timeout: float) -> bool:
        """True once ticket is at the head of the line (in one of its first `lanes` places)."""
        with self._cond:
            return self._cond.wait_for(lambda: ticket in self._line[: self.lanes], timeout)

    def ahead(self, ticket: object) -> int:
        with self._cond:
            return max(0, self._line.index(ticket) - self.lanes + 1)

    def leave(self, ticket: object) -> None:
        with self._cond:
            if ticket in self._line:
                self._line.remove(ticket)
            self._cond.notify_all()

    def hold(self, ticket: object) -> None:
        """Block until ticket is at the head (for calls that cannot show a waiting message)."""
        while not self.wait(ticket, 1.0):
            pass
