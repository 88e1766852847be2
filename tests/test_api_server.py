"""`rag serve` as a real server on loopback, spoken to with the real `openai` client (slow tier):
clients that leave mid-stream (the model is free for the next question, a model server's generation
stops) and questions answered in parallel on a model server. tests/test_serve.py has the streamed
cited answer and four clients on the in-process model."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import SEEDS
from openai_stub import Stub, chunks, free_port, models

from rag.config import Settings
from rag.ingest.indexing import build_index

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.slow

RAG = str(Path(sys.executable).with_name("rag"))
QUESTION = "Quelle ministre française des Armées s'est rendue à Kiev ?"


@contextmanager
def rag_serve(index: Path, *args: str, ready_s: float = 180.0):
    """`rag serve` on a free port; its /v1 URL while the block runs."""
    port = free_port()
    env = {**os.environ, "RAG_INDEX_DIR": str(index)}
    proc = subprocess.Popen([RAG, "serve", "--port", str(port), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"rag serve exited: {proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "rag serve did not start"
            time.sleep(0.5)
        yield base + "/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    from rag.retrieval.embedders import make_embedder

    settings = Settings.from_env(docs_dir=SEEDS, index_dir=tmp_path_factory.mktemp("api") / "index")
    build_index(settings, make_embedder(settings.embedder, settings.cache_dir, settings.n_threads))
    return settings.index_dir


def client(url: str) -> "openai.OpenAI":
    return openai.OpenAI(base_url=url, api_key="none", timeout=300, max_retries=0)


def leave_after_first_event(url: str) -> None:
    stream = client(url).chat.completions.create(model="rag", messages=[{"role": "user", "content": QUESTION}],
                                                 stream=True, extra_body={"rag_live": True})
    next(iter(stream))
    stream.close()


def test_a_client_leaving_frees_the_model_at_once(index):
    # No waiting line: while a question holds the model, the next one is told the assistant is busy.
    # Nothing leaks: three clients leave, and each time the model comes free for the next question.
    # (The answer stops at its next piece; retrieval and prefill run to their end. The stub test
    # below times the stop, on a model server; here a busy shared CPU can make a second a minute.)
    with rag_serve(index, "--max-waiting", "0") as url:
        for _ in range(3):
            leave_after_first_event(url)
            deadline = time.monotonic() + 120
            while True:
                try:
                    reply = client(url).chat.completions.create(model="rag", messages=[{"role": "user", "content": QUESTION}])
                    break
                except openai.APIStatusError as e:
                    assert e.status_code == 503 and time.monotonic() < deadline, "the model stayed taken"
                    time.sleep(0.1)
            assert "Vautrin" in reply.choices[0].message.content
        assert httpx.get(url.removesuffix("/v1") + "/health").json()["status"] == "ok"


def test_a_client_leaving_stops_the_model_servers_generation(index):
    # A model server that would take 20 s to answer: the API must hang up on it when its client leaves.
    long = chunks([f"word{i} " for i in range(100)])
    with Stub({"GET /v1/models": models("slow"), "POST /v1/chat/completions": lambda b: (200, long)}, chunk_delay=0.2) as stub:
        with rag_serve(index, "--llm-url", stub.url) as url:
            t0 = time.perf_counter()
            leave_after_first_event(url)
            assert stub.disconnected.wait(10), "the model server kept generating for a client that left"
            assert time.perf_counter() - t0 < 10


def test_questions_run_in_parallel_on_a_model_server(index):
    # Each answer takes the model server about 1 s; four at once take about 1 s, not 4.
    answer = chunks([f"w{i} " for i in range(5)])
    with Stub({"GET /v1/models": models("m"), "POST /v1/chat/completions": lambda b: (200, answer)}, chunk_delay=0.2) as stub:
        with rag_serve(index, "--llm-url", stub.url) as url:
            client(url).chat.completions.create(model="rag", messages=[{"role": "user", "content": QUESTION}])  # warm
            errors: list[Exception] = []

            def ask() -> None:
                try:
                    client(url).chat.completions.create(model="rag", messages=[{"role": "user", "content": QUESTION}])
                except Exception as e:  # asserted below
                    errors.append(e)

            threads = [threading.Thread(target=ask) for _ in range(4)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
    # One after the other, the server alone would take 4 s.
    assert not errors and wall < 3.6, f"4 answers of 1 s each took {wall:.1f} s"
