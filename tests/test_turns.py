"""rag.generation.turns: processes take turns to generate; a process never waits for itself."""

import logging
import subprocess
import sys
import threading

from rag.generation.turns import MachineTurn

HOLD = """
import sys, time
from pathlib import Path
from rag.generation.turns import MachineTurn
with MachineTurn(Path(sys.argv[1])).held():
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
    Path(sys.argv[2]).write_text("done")
"""


def holder(tmp_path, seconds):
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "turn.lock"), str(tmp_path / "done"), str(seconds)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_second_process_waits_for_the_first_to_finish(tmp_path):
    child = holder(tmp_path, 0.5)
    try:
        with MachineTurn(tmp_path / "turn.lock").held():
            # Only given once the other process has finished what it did with the turn.
            assert (tmp_path / "done").read_text() == "done"
    finally:
        child.wait(timeout=30)


def test_a_process_never_waits_for_itself(tmp_path):
    turn = MachineTurn(tmp_path / "turn.lock", wait_s=60)
    entered = []

    def other_thread():
        with turn.held():
            entered.append("thread")

    with turn.held():
        with turn.held():  # the second model called while the first model's stream is open
            entered.append("nested")
        t = threading.Thread(target=other_thread)
        t.start()
        t.join(timeout=10)
    assert entered == ["nested", "thread"]
    # Released: another process gets it at once.
    child = holder(tmp_path, 0)
    child.wait(timeout=30)


def test_a_turn_not_given_in_time_is_taken_anyway_and_said(tmp_path, caplog):
    child = holder(tmp_path, 60)
    try:
        with caplog.at_level(logging.WARNING, logger="rag.generation.turns"):
            with MachineTurn(tmp_path / "turn.lock", wait_s=0.3).held():
                entered = True
        assert entered and not (tmp_path / "done").exists()
        assert "waiting for another rag process" in caplog.text
    finally:
        child.kill()
        child.wait(timeout=30)
