"""The HTTP API's contract (rag/apps/api.py) with FastAPI's TestClient and the fake generator:
status codes, authentication, the OpenAI schema with citations, bounds. The slow tier
(tests/test_api_server.py) runs it as a real server with the real model and the openai client."""

from __future__ import annotations

import json

import pytest
from conftest import make_assistant
from fastapi.testclient import TestClient

from rag.apps.api import create_api
from rag.errors import RemoteError

QUESTION = "Qui est le ministre de la défense ?"
REPLY = "Rustem Umerov est le ministre de la défense."


def client_for(settings, replies=(REPLY,), **kw):
    assistant, gen = make_assistant(settings, list(replies))
    return TestClient(create_api(assistant, settings, **kw)), assistant, gen


def chat(question=QUESTION, **extra):
    return {"model": "rag", "messages": [{"role": "user", "content": question}], **extra}


def sse(response) -> list:
    """The data of each server-sent event, JSON-decoded but for [DONE]."""
    out = []
    for line in response.iter_lines():
        if line.startswith("data:"):
            data = line[5:].strip()
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_health_and_models(corpus):
    client, assistant, _ = client_for(corpus)
    assert client.get("/health").json() == {"status": "ok", "model": assistant.model_label}
    models = client.get("/v1/models").json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["rag"]


def test_ask_returns_exactly_the_rag_ask_json_object(corpus):
    client, assistant, _ = client_for(corpus)
    got = client.post("/v1/ask", json={"question": QUESTION})
    assert got.status_code == 200
    want = assistant.ask(QUESTION).to_dict()
    got = got.json()
    assert got.keys() == want.keys()
    assert {k: v for k, v in got.items() if k != "timings"} == {k: v for k, v in want.items() if k != "timings"}
    assert got["citations"][0]["source"] == "beta.md"


def test_chat_completion_keeps_markers_and_carries_citations(corpus):
    client, _, gen = client_for(corpus)
    body = client.post("/v1/chat/completions", json=chat()).json()
    text = body["choices"][0]["message"]["content"]
    assert body["object"] == "chat.completion" and body["choices"][0]["finish_reason"] == "stop"
    assert text.startswith("Rustem Umerov") and "[1]" in text
    cited = body["citations"][0]
    assert cited["n"] == 1 and cited["source"] == "beta.md" and "Umerov" in cited["text"]
    doc = (corpus.docs_dir / "beta.md").read_text(encoding="utf-8")
    assert doc[cited["start"]:cited["end"]] == cited["text"]
    assert body["usage"]["completion_tokens"] > 0
    assert f"Question: {QUESTION}" in gen.calls[0][-1]["content"]  # the engine's own prompt around the question


def test_earlier_turns_are_the_history_of_a_follow_up(corpus):
    client, _, gen = client_for(corpus, ["Le ministre de la défense", REPLY])
    messages = [{"role": "system", "content": "ignored: the engine has its own"},
                {"role": "user", "content": "Qui est Umerov ?"}, {"role": "assistant", "content": "Le ministre [1]."},
                {"role": "user", "content": [{"type": "text", "text": "Et de quoi ?"}]}]
    assert client.post("/v1/chat/completions", json={"messages": messages}).status_code == 200
    assert "Umerov" in json.dumps(gen.calls[0], ensure_ascii=False)  # the rewrite saw the earlier turn


def test_streamed_answer_is_the_checked_text_with_citations_last(corpus):
    client, _, _ = client_for(corpus)
    with client.stream("POST", "/v1/chat/completions", json=chat(stream=True, stream_options={"include_usage": True})) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse(r)
    assert events[-1] == "[DONE]"
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])
    last = events[-2]
    assert last["choices"][0]["finish_reason"] == "stop" and last["citations"][0]["source"] == "beta.md"
    assert text.startswith("Rustem Umerov") and "[1]" in text and last["usage"]["total_tokens"] > 0


def test_live_streaming_says_when_the_check_replaced_the_answer(corpus):
    restated = "Le ministre de la défense est le ministre de la défense."
    client, _, _ = client_for(corpus, [restated])
    with client.stream("POST", "/v1/chat/completions", json=chat(stream=True, rag_live=True)) as r:
        events = sse(r)
    pieces = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert pieces.startswith(restated[:-1])  # what the model wrote, as it came (cited as it streamed)
    assert "Rustem Umerov" in events[-2]["replace"]  # then the checked answer to show instead
    # Without rag_live, a client never receives the text the check took back.
    with client.stream("POST", "/v1/chat/completions", json=chat(stream=True)) as r:
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in sse(r)[:-1])
    assert "Rustem Umerov" in text and restated not in text


def test_a_key_is_required_when_set_and_health_stays_open(corpus):
    client, _, _ = client_for(corpus.replace(api_key="s3cret"))
    assert client.get("/health").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
        r = client.post("/v1/chat/completions", json=chat(), headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert "RAG_API_KEY" in r.json()["error"]["message"]
    assert client.get("/v1/models").status_code == 401
    ok = {"Authorization": "Bearer s3cret"}
    assert client.post("/v1/ask", json={"question": QUESTION}, headers=ok).status_code == 200


@pytest.mark.parametrize("body, status, reason", [
    (b"{not json", 400, "not valid JSON (Expecting property name enclosed in double quotes at line 1, column 2)"),
    (b"[1, 2]", 400, "must be a JSON object"),
    (b"\xff\xfe", 400, "not UTF-8 JSON"),
    (json.dumps({"messages": []}).encode(), 400, "messages must be a non-empty list"),
    (json.dumps({"messages": [{"role": "assistant", "content": "hi"}]}).encode(), 400, "the last message must be the user's"),
    (json.dumps(chat("   ")).encode(), 400, "the question is empty"),
    (json.dumps(chat("x" * 2001)).encode(), 400, "2001 characters; the limit is 2000"),
    (json.dumps(chat(top_k=500)).encode(), 400, "top_k must be an integer from 0 to 20"),
    (json.dumps(chat(temperature="hot")).encode(), 400, "temperature must be a number"),
    (json.dumps(chat(stream="yes")).encode(), 400, "stream and rag_live must be true or false"),
    (json.dumps({"messages": [{"role": "user", "content": 5}]}).encode(), 400, "content must be a string"),
])
def test_bad_requests_say_what_is_wrong(corpus, body, status, reason):
    client, _, gen = client_for(corpus)
    r = client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and reason in r.json()["error"]["message"], r.text
    assert not gen.calls  # nothing reached the model


def test_oversized_requests_are_refused_before_they_are_read(corpus):
    client, _, _ = client_for(corpus)
    r = client.post("/v1/ask", content=b'{"question": "' + b"a" * 70_000 + b'"}')
    assert r.status_code == 413 and "RAG_MAX_REQUEST_KB" in r.json()["error"]["message"]

    def chunked():  # no content-length: counted as it arrives
        yield b'{"question": "'
        for _ in range(100):
            yield b"a" * 1000
    r = client.post("/v1/ask", content=chunked())
    assert r.status_code == 413


def test_a_full_line_answers_503_with_retry_after(corpus):
    client, _, gen = client_for(corpus, max_waiting=0)
    gate = client.app.state.api.gate
    holder = gate.join()  # a question being answered
    try:
        r = client.post("/v1/chat/completions", json=chat())
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
        assert "busy" in r.json()["error"]["message"]
    finally:
        gate.leave(holder)
    assert client.post("/v1/chat/completions", json=chat()).status_code == 200


def test_an_unreachable_model_server_is_a_502_with_its_sentence(corpus):
    client, assistant, _ = client_for(corpus)

    def down(*a, **k):
        raise RemoteError("the model server at http://10.0.0.9:8000/v1 is not reachable; start it or fix RAG_LLM_URL")
        yield

    assistant.generator.stream = down
    r = client.post("/v1/chat/completions", json=chat())
    assert r.status_code == 502 and r.json()["error"]["message"].startswith("the model server at http://10.0.0.9")
    with client.stream("POST", "/v1/chat/completions", json=chat(stream=True)) as s:
        events = sse(s)
    assert "not reachable" in events[-2]["error"]["message"] and events[-1] == "[DONE]"
    assert client.app.state.api.gate.ahead(client.app.state.api.gate.join()) == 0  # the failed ones left the line


def test_an_engine_bug_is_a_500_without_a_traceback(corpus):
    client, assistant, _ = client_for(corpus)

    def broken(*a, **k):
        raise KeyError("internal detail")

    assistant.retriever.search = broken
    r = client.post("/v1/ask", json={"question": QUESTION})
    assert r.status_code == 500 and "see the server log" in r.json()["error"]["message"]
    assert "Traceback" not in r.text and "internal detail" not in r.text


def test_a_gate_with_lanes_lets_that_many_answer_at_once():
    from rag.apps.web.gate import ModelGate
    from rag.errors import BusyError

    gate = ModelGate(max_waiting=1, lanes=2)
    a, b, c = gate.join(), gate.join(), gate.join()
    assert gate.wait(a, 0) and gate.wait(b, 0) and not gate.wait(c, 0.01)
    assert gate.ahead(c) == 1
    with pytest.raises(BusyError):
        gate.join()
    gate.leave(a)
    assert gate.wait(c, 0) and gate.ahead(c) == 0
