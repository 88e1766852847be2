"""Faults: an indexer killed with SIGKILL while it writes, concurrent index rebuilds under readers,
and a model that fails in the middle of an answer. Nothing already indexed may be lost, and every
front end keeps serving."""

from __future__ import annotations

import fcntl
import os
import random
import shutil
import signal
import subprocess
import threading
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_assistant, make_settings

from rag.answer.assistant import Assistant
from rag.apps.cli import main
from rag.generation.llama import FakeGenerator
from rag.ingest.indexing import build_index
from rag.ingest.store import CURRENT, live_generation, load_index
from rag.retrieval.embedders import FakeEmbedder
from rag.retrieval.search import Retriever

ROOT = Path(__file__).resolve().parents[1]
RAG_BIN = ROOT / ".venv" / "bin" / "rag"
needs_console_script = pytest.mark.skipif(not RAG_BIN.exists(), reason="needs the installed console script (.venv/bin/rag)")


def env_for(settings) -> dict[str, str]:
    return {**os.environ, "RAG_DOCS_DIR": str(settings.docs_dir), "RAG_INDEX_DIR": str(settings.index_dir),
            "RAG_CACHE_DIR": str(settings.cache_dir), "RAG_EMBEDDER": FakeEmbedder.name}


def write_big_corpus(folder: Path, files: int = 40, paragraphs: int = 400) -> None:
    """About 4 MB of text, 16,000 chunks: the new generation takes a few hundred ms to write, far
    longer than the polling interval below."""
    rng = random.Random(7)
    vocab = [f"mot{i}" for i in range(20_000)]
    for f in range(files):
        lines = (" ".join(rng.choice(vocab) for _ in range(40)) + "." for _ in range(paragraphs))
        (folder / f"big{f:03d}.txt").write_text("\n\n".join(lines), encoding="utf-8")


@pytest.fixture
def settings():
    """On disk, not in /dev/shm where conftest puts test folders: the kill tests catch the indexer
    between writing a generation's files and publishing it, a window that fsync keeps open on a
    disk and that on tmpfs can close between two polls (seen once: the indexer had exited)."""
    root = Path(tempfile.mkdtemp(prefix="rag-faults-", dir="/var/tmp"))
    try:
        yield make_settings(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def wait_for(predicate, timeout: float, interval: float = 0.001) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return False


def writing_generation(index_dir: Path, phase: str | None) -> Path | None:
    """The half-written generation folder, once it holds `phase` (any state when None)."""
    for p in index_dir.glob(".gen-*.tmp"):
        if phase is None or (p / phase).exists():
            return p
    return None


def kill_mid_write(settings, phase: str | None) -> Path:
    """Run the real `rag index` and SIGKILL it while it writes a new generation. SIGSTOP first
    freezes it at the observed point, so the state checked is the state it dies in."""
    proc = subprocess.Popen([str(RAG_BIN), "index"], env=env_for(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = wait_for(lambda: writing_generation(settings.index_dir, phase) is not None or proc.poll() is not None, 300)
        os.kill(proc.pid, signal.SIGSTOP)
        tmp = writing_generation(settings.index_dir, phase)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert seen and proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr.read()[-2000:])
    assert tmp is not None and tmp.exists(), "the indexer was not caught mid-write"
    return tmp


def check_survives_kill(corpus, phase: str | None) -> None:
    before = load_index(corpus.index_dir, FakeEmbedder.name)
    write_big_corpus(corpus.docs_dir)
    tmp = kill_mid_write(corpus, phase)

    # The previous generation is still the live one, loads, and answers.
    assert live_generation(corpus.index_dir) == before.path
    data = load_index(corpus.index_dir, FakeEmbedder.name)
    assert set(data.manifest.files) == {"alpha.txt", "beta.md"}
    assistant, gen = make_assistant(corpus, ["Rustem Umerov est le ministre de la défense [1]."])
    answer = assistant.ask("Qui est le ministre de la défense Umerov ?")
    assert not answer.refused and answer.citations
    assert min(answer.retrieved, key=lambda h: h.rank).chunk.source == "beta.md"

    # The next run completes the job and clears the leftovers.
    done = subprocess.run([str(RAG_BIN), "index"], env=env_for(corpus), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    after = load_index(corpus.index_dir, FakeEmbedder.name)
    assert len(after.manifest.files) == 42 and after.path != before.path
    assert not tmp.exists() and not before.path.exists()
    assert not list(corpus.index_dir.glob(".gen-*")) and not list(corpus.index_dir.glob(f".{CURRENT}.*"))
    hits = Retriever(corpus.index_dir, FakeEmbedder()).search("mot123 mot456", 3)
    assert hits and hits[0].chunk.source.startswith("big")


@needs_console_script
@pytest.mark.slow  # the real `rag index` in a process, twice on a 16,000-chunk corpus (20-40 s)
def test_indexer_killed_while_writing_loses_nothing(corpus):
    check_survives_kill(corpus, None)


@needs_console_script
@pytest.mark.slow  # two more full runs of the 16,000-chunk indexer
@pytest.mark.parametrize("phase", ["vectors.faiss", "manifest.json"])
def test_indexer_killed_at_later_write_phases_loses_nothing(corpus, phase):
    check_survives_kill(corpus, phase)


def lock_is_held(index_dir: Path) -> bool:
    try:
        with open(index_dir / ".lock", "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
            return False
    except FileNotFoundError:
        return False


@needs_console_script
@pytest.mark.slow  # the real `rag index` in a process on an 8,000-chunk corpus
def test_second_indexer_is_refused_with_one_line_while_the_first_writes(corpus):
    write_big_corpus(corpus.docs_dir, files=20)
    proc = subprocess.Popen([str(RAG_BIN), "index"], env=env_for(corpus), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: lock_is_held(corpus.index_dir) or proc.poll() is not None, 300, 0.01)
        assert proc.poll() is None, "the first indexer finished before the check"
        result = CliRunner().invoke(main, ["index"], env=env_for(corpus))
        assert result.exit_code == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "another `rag index`" in lines[0] and "wait" in lines[0]
        assert proc.wait(600) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(load_index(corpus.index_dir).manifest.files) == 22


def test_readers_never_fail_while_the_index_is_rebuilt(corpus):
    """Every rebuild publishes a new generation and deletes the old one; a reader that picked the
    old one a moment earlier must not report the index as damaged."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        retriever = Retriever(corpus.index_dir, FakeEmbedder())
        while not stop.is_set():
            try:
                retriever._data = None  # force a full load from disk every time
                assert retriever.search("ministre Umerov", 2)
            except BaseException as e:  # noqa: BLE001 - collected and reported by the test
                errors.append(e)
                return

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        for i in range(30):
            # Alternate chunk sizes so every build re-chunks: chunk counts differ between generations.
            build_index(corpus.replace(chunk_tokens=12 + (i % 2) * 20, chunk_overlap=2), FakeEmbedder())
            if errors:
                break
    finally:
        stop.set()
        for t in readers:
            t.join(30)
    assert not errors, repr(errors[0])


# ---------------------------------------------------------------- a model failing mid-answer


class FailOnce(FakeGenerator):
    """Fails in the middle of its first answer (as llama.cpp does on a decode error), then works."""

    def __init__(self, replies: list[str], fail_after: int = 2):
        super().__init__(replies, fail_after=fail_after)

    def stream(self, messages, max_tokens, temperature=0.0):
        try:
            yield from super().stream(messages, max_tokens, temperature)
        finally:
            self.fail_after = None


def test_assistant_stream_surfaces_the_failure_and_the_next_question_works(corpus):
    gen = FailOnce(["Rustem Umerov est le ministre de la défense [1]."])
    assistant = Assistant(Retriever(corpus.index_dir, FakeEmbedder()), gen, corpus)
    shown = []
    with pytest.raises(Exception) as failure:
        for item in assistant.stream("Qui est Umerov ?"):
            shown.append(item)
    assert "fake generator failure" in str(failure.value)
    answer = assistant.ask("Qui est Umerov ?")
    assert not answer.refused and "Umerov" in answer.text and answer.citations


def test_cli_model_failing_mid_answer_is_one_line_not_a_traceback(corpus, tmp_path, monkeypatch):
    fake = tmp_path / "m.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 64)
    monkeypatch.setattr("rag.generation.llama.LlamaGenerator", lambda *a, **k: FakeGenerator(["Umerov est le ministre de la défense [1]."], fail_after=3))
    result = CliRunner().invoke(main, ["ask", "Qui est Umerov ?"], env={**env_for(corpus), "RAG_MODEL": str(fake)})
    assert result.exit_code == 1, (result.exit_code, result.output, repr(result.exception))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output


def test_chat_shows_the_failure_for_that_turn_and_keeps_serving(corpus):
    ui = pytest.importorskip("rag.apps.web")
    gen = FailOnce(["Rustem Umerov est le ministre de la défense [1]."])
    assistant = Assistant(Retriever(corpus.index_dir, FakeEmbedder()), gen, corpus)
    service = ui.ChatService(assistant, corpus, max_waiting=2)

    *_, (_, messages, panel, session) = service.respond("Qui est Umerov ?", None)
    assert messages[-1]["role"] == "assistant" and "⚠️" in messages[-1]["content"]
    assert "failed" in messages[-1]["content"] and "Traceback" not in messages[-1]["content"]
    assert [t.answer for t in session.turns] == [None] and session.history() == [], \
        "a failed turn is not remembered as an answer, nor fed to the next question as history"
    assert service.gate._line == [], "the failed request released the model"

    *_, (_, messages, panel, session) = service.respond("Qui est Umerov ?", session)
    assert "Umerov" in messages[-1]["content"] and "⚠️" not in messages[-1]["content"]
    assert panel and "beta.md" in panel
    assert [t.answer is not None for t in session.turns] == [False, True]


def test_api_reports_the_failure_and_keeps_serving(corpus):
    ui = pytest.importorskip("rag.apps.web")
    gr = pytest.importorskip("gradio")
    gen = FailOnce(["Rustem Umerov est le ministre de la défense [1]."])
    assistant = Assistant(Retriever(corpus.index_dir, FakeEmbedder()), gen, corpus)
    service = ui.ChatService(assistant, corpus, max_waiting=2)
    with pytest.raises(gr.Error) as failure:
        service.ask("Qui est Umerov ?")
    assert "failed" in str(failure.value.message) and "\n" not in str(failure.value.message)
    out = service.ask("Qui est Umerov ?")
    assert not out["refused"] and out["citations"]
    assert min(out["retrieved"], key=lambda h: h["rank"])["source"] == "beta.md"


@pytest.mark.slow
def test_real_generator_streamed_across_worker_threads_keeps_serving(tmp_path):
    """Gradio advances a streaming handler one step at a time on whichever worker thread is free,
    so one answer's generator is started on one thread and finished on another. The model must
    be usable by the next request afterwards (a lock owned by the first thread would hang it)."""
    from concurrent.futures import ThreadPoolExecutor

    from rag.config import Settings
    from rag.generation.llama import LlamaGenerator
    from rag.generation.models import resolve_model

    settings = Settings.from_env()
    gen = LlamaGenerator(resolve_model(settings.model, settings.cache_dir), n_ctx=1024, n_threads=settings.n_threads)
    messages = [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "Count from one to five."}]
    gen.count_tokens("load the model")
    with ThreadPoolExecutor(1) as first, ThreadPoolExecutor(1) as second, ThreadPoolExecutor(1) as third:
        stream = gen.stream(messages, 8)
        assert first.submit(next, stream).result(120)  # started on one worker thread...
        second.submit(lambda: list(stream)).result(120)  # ...finished on another, as Gradio does
        again = third.submit(lambda: "".join(gen.stream(messages, 8)))
        assert again.result(120), "the next request got the model"
