"""rag.servers: a process started on a free port, waited for until it answers, stopped after; and the
one-line errors when it exits first or never answers. The processes are tiny Python ones (Python's
own http.server), quick enough for the fast tier."""

import sys

import httpx
import pytest

from rag.servers import ServerError, free_port, running


def test_the_block_runs_once_the_server_answers_and_the_server_is_stopped_after():
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    with running(cmd, lambda: httpx.get(url, timeout=2), name="http.server", ready_s=30, poll_s=0.05) as (proc, answer):
        assert answer.status_code == 200 and proc.poll() is None
    assert proc.poll() is not None, "stopped after the block"
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)


def test_a_server_that_exits_first_fails_with_its_last_output():
    cmd = [sys.executable, "-c", "import sys; print('port already taken'); sys.exit(3)"]
    with pytest.raises(ServerError, match=r"(?s)toy exited with 3: .*port already taken"):
        with running(cmd, lambda: False, name="toy", ready_s=30, poll_s=0.05):
            pass


def test_a_server_that_never_answers_fails_in_time_and_is_stopped():
    cmd = [sys.executable, "-c", "import time; print('listening soon', flush=True); time.sleep(60)"]
    with pytest.raises(ServerError, match=r"(?s)toy did not answer within 0.5 s.*listening soon"):
        with running(cmd, lambda: None, name="toy", ready_s=0.5, poll_s=0.05):
            pass
