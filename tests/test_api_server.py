"""`rag serve` as a real server on loopback, spoken to with the real `openai` client (slow tier):
clients that leave mid-stream (the model is free for the next question, a model server's generation
stops) and questions answered in parallel on a model server. tests/test_serve.py has the streamed
cited answer and four clients on the in-process model."""

from __future__ import annotations

import time

import httpx
import pytest
from helpers import load_script, rag_serve
from openai_stub import Stub, chunks, models

pytestmark = pytest.mark.slow

QUESTION = "Quelle ministre française des Armées s'est rendue à Kiev ?"


@pytest.fixture(scope="module", autouse=True)
def openai():
    """The client library, imported when a test here runs (not when the fast tier collects this file)."""
    return pytest.importorskip("openai")


def client(url: str):
    import openai

    return openai.OpenAI(base_url=url, api_key="none", timeout=300, max_retries=0)


def leave_after_first_event(url: str) -> None:
    stream = client(url).chat.completions.create(model="rag", messages=[{"role": "user", "content": QUESTION}],
                                                 stream=True, extra_body={"rag_live": True})
    next(iter(stream))
    stream.close()


def test_a_client_leaving_frees_the_model_at_once(seed_index, openai):
    # No waiting line: while a question holds the model, the next one is told the assistant is busy.
    # Nothing leaks: three clients leave, and each time the model comes free for the next question.
    # (The answer stops at its next piece; retrieval and prefill run to their end. The stub test
    # below times the stop, on a model server; here a busy shared CPU can make a second a minute.)
    with rag_serve(seed_index, "--max-waiting", "0") as base:
        url = base + "/v1"
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


def test_a_client_leaving_stops_the_model_servers_generation(seed_index):
    # A model server that would take 20 s to answer: the API must hang up on it when its client leaves.
    long = chunks([f"word{i} " for i in range(100)])
    with Stub({"GET /v1/models": models("slow"), "POST /v1/chat/completions": lambda b: (200, long)}, chunk_delay=0.2) as stub:
        with rag_serve(seed_index, "--llm-url", stub.url) as base:
            url = base + "/v1"
            t0 = time.perf_counter()
            leave_after_first_event(url)
            assert stub.disconnected.wait(10), "the model server kept generating for a client that left"
            assert time.perf_counter() - t0 < 10


def test_questions_run_in_parallel_on_a_model_server(seed_index):
    # Each answer takes the model server about 1 s; four at once take about 1 s, not 4.
    answer = chunks([f"w{i} " for i in range(5)])
    with Stub({"GET /v1/models": models("m"), "POST /v1/chat/completions": lambda b: (200, answer)}, chunk_delay=0.2) as stub:
        with rag_serve(seed_index, "--llm-url", stub.url) as base:
            url = base + "/v1"
            client(url).chat.completions.create(model="rag", messages=[{"role": "user", "content": QUESTION}])  # warm
            # scripts/loadtest.py's users: four at once, one question each.
            run = load_script("loadtest").run(url, "", users=4, rounds=1, questions=[QUESTION], timeout=300)
    # One after the other, the server alone would take 4 s.
    assert not run["errors"] and run["ok"] == 4 and run["wall_s"] < 3.6, f"4 answers of 1 s each: {run}"
