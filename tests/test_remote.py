"""Remote backends (RAG_LLM_URL, RAG_EMBED_URL) against a scripted server on loopback: streaming,
stop strings, statistics, and every way a server can be down, slow or the wrong one. The slow tier
(tests/test_remote_server.py) runs them against llama.cpp's real server."""

from __future__ import annotations

import time

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_assistant
from helpers import free_port
from openai_stub import Stub, chunks, models

from rag.answer.assistant import Assistant
from rag.config import Settings
from rag.endpoints import Endpoint, api_base
from rag.errors import ConfigError, IndexIncompatibleError, ModelError, RemoteError
from rag.generation.remote import RemoteGenerator, cut_at_stop
from rag.retrieval.remote import RemoteEmbedder, embedder_for
from rag.retrieval.search import Retriever

ANSWER = "Rustem Umerov est le ministre de la défense."


def chat(pieces, usage=None):
    return lambda body: (200, chunks(pieces, usage))


def endpoint(url: str, **kw) -> Endpoint:
    return Endpoint(url, timeout_s=kw.pop("timeout_s", 5.0), **kw)


def test_urls_are_normalised_and_nonsense_is_refused():
    assert api_base("http://h:8000", "RAG_LLM_URL") == "http://h:8000/v1"
    assert api_base("http://h:8000/v1/", "RAG_LLM_URL") == "http://h:8000/v1"
    with pytest.raises(ConfigError, match="RAG_LLM_URL='localhost:8000' is not an http"):
        api_base("localhost:8000", "RAG_LLM_URL")


def test_stream_sends_the_engines_messages_and_yields_the_pieces(corpus):
    routes = {"GET /v1/models": models("qwen"), "POST /v1/chat/completions": chat(["Rustem ", "Umerov est le ", "ministre de la défense."],
                                                                                  {"prompt_tokens": 321, "completion_tokens": 9})}
    with Stub(routes) as stub:
        gen = RemoteGenerator(endpoint(stub.url))
        fake, recorded = make_assistant(corpus, [ANSWER])
        assistant = Assistant(fake.retriever, gen, corpus, model_label="remote")
        answer = assistant.ask("Qui est le ministre de la défense ?")
        local = fake.ask("Qui est le ministre de la défense ?")
        sent = next(body for key, body in stub.calls if key == "POST /v1/chat/completions")
    # The same prompt as the in-process model gets, the same checked and cited answer.
    assert sent["messages"] == recorded.calls[0] and sent["stream"] is True and sent["model"] == "qwen"
    assert sent["temperature"] == 0.0 and sent["max_tokens"] == corpus.max_answer_tokens and "<|im_end|>" in sent["stop"]
    assert answer.text == local.text and answer.citations == local.citations and not answer.refused
    t = answer.timings
    assert t["prompt_tokens"] == 321 and t["completion_tokens"] == 9  # the server's usage, when it reports it
    assert 0 < t["ttft_s"] <= t["total_s"] and t["decode_tps"] > 0


def test_without_usage_the_client_measures_and_counts_by_tiktoken():
    routes = {"GET /v1/models": models("m"), "POST /v1/chat/completions": chat(["a", " b", " c"])}
    with Stub(routes, chunk_delay=0.05) as stub:
        gen = RemoteGenerator(endpoint(stub.url))
        assert "".join(gen.stream([{"role": "user", "content": "hello world"}], 10)) == "a b c"
        stats = gen.last_stats
        assert stats.completion_tokens == 3 and stats.prompt_tokens == 2  # cl100k: "hello", " world"
        assert stats.decode_s >= 0.05 and stats.ttft_s > 0  # two gaps of 0.05 s, measured at the client
        # No /extras/tokenize nor /tokenize on this server: probed once each, then never again.
        gen.count_tokens("another text")
        assert stub.count("POST /extras/tokenize/count") == 1 and stub.count("POST /tokenize") == 1


def test_llama_server_tokenizer_and_timings_are_used():
    timings = {"prompt_n": 40, "prompt_ms": 100.0, "predicted_n": 3, "predicted_ms": 60.0, "cache_n": 12}
    events = chunks(["x", "y"])
    events[-1]["timings"] = timings
    routes = {"GET /v1/models": models("m", max_model_len=2048), "POST /v1/chat/completions": lambda b: (200, events),
              "POST /tokenize": lambda b: (200, {"tokens": list(range(len(b["content"].split())))})}
    with Stub(routes) as stub:
        gen = RemoteGenerator(endpoint(stub.url), n_ctx=4096)
        assert gen.n_ctx == 2048  # the server's context, when it says (vLLM's max_model_len)
        assert gen.count_tokens("one two three") == 3
        list(gen.stream([{"role": "user", "content": "q"}], 10))
    assert gen.last_stats.cached_tokens == 12
    assert gen.last_stats.llama["prefill_tps"] == pytest.approx(400.0) and gen.last_stats.llama["decode_tps"] == pytest.approx(50.0)


def test_a_stop_string_cuts_the_answer_even_split_across_pieces():
    assert cut_at_stop("abc<|im", ("<|im_end|>",)) == ("abc", "<|im", False)
    assert cut_at_stop("abc<|im_end|>def", ("<|im_end|>",)) == ("abc", "", True)
    assert cut_at_stop("a < b", ("<|im_end|>",)) == ("a < b", "", False)
    routes = {"GET /v1/models": models("m"), "POST /v1/chat/completions": chat(["Yes <", "|im_", "end|>", "user: more"])}
    with Stub(routes) as stub:
        assert "".join(RemoteGenerator(endpoint(stub.url)).stream([{"role": "user", "content": "q"}], 10)) == "Yes "


def test_a_model_the_server_does_not_serve_is_named_with_those_it_does():
    with Stub({"GET /v1/models": models("a", "b")}) as stub:
        assert RemoteGenerator(endpoint(stub.url), "default").model == "a"  # a preset name takes the first
        with pytest.raises(ModelError, match="has no model 'c'; it serves a, b"):
            RemoteGenerator(endpoint(stub.url), "c")


def test_a_down_server_fails_fast_with_its_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    t0 = time.perf_counter()
    with pytest.raises(RemoteError, match=r"the model server at http://127\.0\.0\.1:\d+/v1 is not reachable .*fix RAG_LLM_URL"):
        RemoteGenerator(endpoint(url))
    assert time.perf_counter() - t0 < 3  # three attempts, backing off 0.25 s then 0.5 s


def test_a_silent_server_times_out_instead_of_hanging():
    def stall(body):
        time.sleep(3)
        return 200, chunks(["late"])

    with Stub({"GET /v1/models": models("m"), "POST /v1/chat/completions": stall}) as stub:
        gen = RemoteGenerator(endpoint(stub.url, timeout_s=0.5))
        t0 = time.perf_counter()
        with pytest.raises(RemoteError, match="sent nothing for 0.5 s"):
            list(gen.stream([{"role": "user", "content": "q"}], 10))
        assert time.perf_counter() - t0 < 2  # never retried: a generation may have begun


def test_the_wrong_kind_of_server_is_named_as_such():
    with Stub({"GET /v1/models": lambda b: (200, "<html>a web page</html>")}) as stub:
        with pytest.raises(RemoteError, match="not a JSON object; is RAG_LLM_URL an OpenAI-compatible server"):
            RemoteGenerator(endpoint(stub.url))
    with Stub({}) as stub:
        with pytest.raises(RemoteError, match=r"has no /v1/models \(HTTP 404\)"):
            RemoteGenerator(endpoint(stub.url))


def test_a_wrong_key_says_which_setting_to_fix():
    with Stub({"GET /v1/models": lambda b: (401, {"error": {"message": "bad key"}})}) as stub:
        with pytest.raises(RemoteError, match=r"HTTP 401\); set RAG_LLM_API_KEY"):
            RemoteGenerator(endpoint(stub.url))


def test_a_server_error_mid_stream_is_one_sentence():
    routes = {"GET /v1/models": models("m"), "POST /v1/chat/completions": lambda b: (200, [{"error": {"message": "out of memory"}}])}
    with Stub(routes) as stub:
        with pytest.raises(RemoteError, match="failed while answering: out of memory"):
            list(RemoteGenerator(endpoint(stub.url)).stream([{"role": "user", "content": "q"}], 10))


def vectors(body):
    return 200, {"data": [{"index": i, "embedding": [float(len(t)), 1.0, 0.0]} for i, t in enumerate(body["input"])]}


def test_embeddings_are_retried_through_a_busy_server_and_normalised():
    state = {"calls": 0}

    def busy_then_ok(body):
        state["calls"] += 1
        return (503, {"error": {"message": "loading"}}, {"retry-after": "0"}) if state["calls"] < 3 else vectors(body)

    with Stub({"GET /v1/models": models("nomic-embed"), "POST /v1/embeddings": busy_then_ok}) as stub:
        emb = RemoteEmbedder(endpoint(stub.url, what="the embedding server", setting="RAG_EMBED_URL"))
        out = emb.embed(["ab", "abcd"])
    assert state["calls"] == 3 and emb.name == "remote:nomic-embed" and emb.dim == 3
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0) and out[1, 0] > out[0, 0]


def test_embeddings_give_up_after_three_attempts_with_the_servers_reason():
    routes = {"GET /v1/models": models("e"), "POST /v1/embeddings": lambda b: (503, {"error": {"message": "overloaded"}})}
    with Stub(routes) as stub:
        emb = RemoteEmbedder(endpoint(stub.url, what="the embedding server", setting="RAG_EMBED_URL"))
        with pytest.raises(RemoteError, match="the embedding server at .* answered HTTP 503 to /v1/embeddings: overloaded"):
            emb.embed(["x"])
        assert stub.count("POST /v1/embeddings") == 3


def test_a_chat_model_behind_the_embedding_url_is_explained():
    routes = {"GET /v1/models": models("e"), "POST /v1/embeddings": lambda b: (200, {"data": []})}
    with Stub(routes) as stub:
        with pytest.raises(RemoteError, match="start it with --embedding true"):
            RemoteEmbedder(endpoint(stub.url)).embed(["x"])


def test_vectors_per_token_say_to_set_a_pooling_type():
    tokens = lambda b: (200, {"data": [{"index": 0, "embedding": [[0.1, 0.2], [0.3, 0.4]]}]})  # noqa: E731
    with Stub({"GET /v1/models": models("e"), "POST /v1/embeddings": tokens}) as stub:
        with pytest.raises(RemoteError, match="a vector per token, not per text; give the server a pooling type"):
            RemoteEmbedder(endpoint(stub.url)).embed(["x"])


def test_an_index_refuses_an_embedder_other_than_the_one_that_built_it(corpus):
    with Stub({"GET /v1/models": models("e"), "POST /v1/embeddings": vectors}) as stub:
        remote = embedder_for(corpus.replace(embed_url=stub.url))
        with pytest.raises(IndexIncompatibleError, match="built with embedder 'fake-hash', not 'remote:e'; rebuild it"):
            Retriever(corpus.index_dir, remote).search("ministre", 2)


def test_the_local_embedder_stays_the_default(settings):
    assert embedder_for(settings).name == "fake-hash"


def test_cli_ask_with_a_down_server_is_one_line_and_exit_1(corpus, monkeypatch):
    from rag.apps.cli import main

    url = f"http://127.0.0.1:{free_port()}/v1"
    env = {"RAG_INDEX_DIR": str(corpus.index_dir), "RAG_CACHE_DIR": str(corpus.cache_dir), "RAG_EMBEDDER": "fake-hash"}
    result = CliRunner().invoke(main, ["ask", "Qui est le ministre ?", "--llm-url", url], env=env)
    assert result.exit_code == 1
    assert result.output.strip() == f"error: the model server at {url} is not reachable (connection refused); start it or fix RAG_LLM_URL" \
        or result.output.strip().startswith(f"error: the model server at {url} is not reachable")
    assert "Traceback" not in result.output


def test_settings_read_the_urls_from_the_environment():
    s = Settings.from_env({"RAG_LLM_URL": "http://gpu:8000/v1", "RAG_EMBED_URL": "http://emb:8001", "RAG_REMOTE_PARALLEL": "8"})
    assert (s.llm_url, s.embed_url, s.remote_parallel) == ("http://gpu:8000/v1", "http://emb:8001", 8)


def test_a_remote_first_model_has_a_second_only_where_one_is_named():
    from types import SimpleNamespace

    from rag.config import Settings
    from rag.generation.remote import remote_second

    first = SimpleNamespace(model="qwen-0.5b")
    base = Settings(llm_url="http://127.0.0.1:8000/v1")
    # A preset name on the first model's own server is that server's first model again: no one.
    assert remote_second(base, first) is None
    assert remote_second(base.replace(second_model="qwen-0.5b"), first) is None
    assert remote_second(base.replace(second_model=""), first) is None
    # Another model of the same server, by its id; or any on a second server. Made on first need only.
    other = remote_second(base.replace(second_model="org/qwen-1.5b"), first)
    assert other.name == "qwen-1.5b @ 127.0.0.1:8000" and other._inner is None
    elsewhere = remote_second(base.replace(second_llm_url="http://127.0.0.1:8001/v1"), first)
    assert elsewhere.name == "quality @ 127.0.0.1:8001"
