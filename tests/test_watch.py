"""`rag index --watch` as a user runs it: a real process polling a folder, the index following a file
added, changed and removed, and Ctrl-C (SIGINT) or SIGTERM ending it with exit status 0 and the index
intact. The fake embedder keeps it to seconds; the polling and the process are real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.errors import RagError
from rag.ingest.store import load_index
from rag.retrieval.embedders import FakeEmbedder

pytestmark = pytest.mark.slow

RAG = Path(sys.executable).with_name("rag")


def texts(index_dir: Path) -> dict[str, str]:
    """Each indexed file's text as the live index holds it ({} before the first build)."""
    try:
        data = load_index(index_dir, FakeEmbedder.name)
    except RagError:
        return {}
    out: dict[str, str] = {}
    for c in data.chunks:
        out[c.source] = out.get(c.source, "") + c.text
    return out


def wait_for(check, what: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        assert proc.poll() is None, f"rag index --watch exited ({proc.returncode}) before {what}: {log.read_text()}"
        time.sleep(0.1)
    raise AssertionError(f"the index never showed {what} in {timeout} s: {log.read_text()}")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_watch_follows_the_folder_and_stops_cleanly(tmp_path, stop):
    docs, index = tmp_path / "docs", tmp_path / "index"
    docs.mkdir()
    (docs / "alpha.txt").write_text("The pump runs at 3000 rpm.", encoding="utf-8")
    env = {**os.environ, "RAG_EMBEDDER": "fake-hash", "RAG_CACHE_DIR": str(tmp_path / "cache")}
    log = tmp_path / "watch.log"
    with open(log, "w") as out:
        # Ctrl-C as a terminal sends it: a suite started in the background (`cmd &`, nohup) inherits SIGINT
        # ignored, and so would the watch, which then could not be stopped by it.
        proc = subprocess.Popen([str(RAG), "index", "--watch", "--interval", "0.2", "--docs", str(docs), "--index", str(index)],
                                stdout=out, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for(lambda: "3000 rpm" in texts(index).get("alpha.txt", ""), "the first build", proc, log)
        (docs / "sub").mkdir()
        (docs / "sub" / "beta.md").write_text("# Valves\n\nThe main valve closes by hand.", encoding="utf-8")
        wait_for(lambda: "closes by hand" in texts(index).get("sub/beta.md", ""), "an added file", proc, log)
        (docs / "alpha.txt").write_text("The pump runs at 4500 rpm since the overhaul.", encoding="utf-8")
        wait_for(lambda: "4500 rpm" in texts(index).get("alpha.txt", ""), "a changed file", proc, log)
        (docs / "sub" / "beta.md").unlink()
        wait_for(lambda: set(texts(index)) == {"alpha.txt"}, "a removed file", proc, log)
        wait_for(lambda: log.read_text().count("watching") >= 4, "the watch resuming after the fourth build", proc, log)
        proc.send_signal(stop)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text()
    assert "stopped watching" in output and "Traceback" not in output, output
    assert output.count("indexed ") == 4, output  # one build a change: no build for an unchanged poll
    assert texts(index) == {"alpha.txt": "The pump runs at 4500 rpm since the overhaul."}
    assert not (index / ".wip").exists()  # nothing left half-done
