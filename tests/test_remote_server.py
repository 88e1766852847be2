"""Remote backends against llama.cpp's real server on loopback (slow tier): the bundled default
model served by `python -m llama_cpp.server`, answered through the same engine as `rag ask`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SEEDS
from helpers import default_model, llama_server

from rag.config import Settings
from rag.errors import IndexIncompatibleError
from rag.ingest.indexing import build_index

pytestmark = pytest.mark.slow

RAG = str(Path(sys.executable).with_name("rag"))
QUESTION = "Quelle ministre française des Armées s'est rendue à Kiev ?"


@pytest.fixture(scope="module")
def server():
    with llama_server() as url:
        yield url


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Settings:
    from rag.retrieval.embedders import make_embedder

    root = tmp_path_factory.mktemp("remote")
    settings = Settings.from_env(docs_dir=SEEDS, index_dir=root / "index")
    build_index(settings, make_embedder(settings.embedder, settings.cache_dir, settings.n_threads))
    return settings


def test_rag_ask_on_the_server_answers_as_the_in_process_model(server, seeded):
    env = {**os.environ, "RAG_INDEX_DIR": str(seeded.index_dir)}
    remote = subprocess.run([RAG, "ask", QUESTION, "--json", "--llm-url", server], capture_output=True, text=True,
                            env=env, timeout=600, check=False)
    assert remote.returncode == 0, remote.stderr
    # A remote model has no second model beside it (Settings.second_model): the local run goes without one too.
    local = subprocess.run([RAG, "ask", QUESTION, "--json"], capture_output=True, text=True,
                           env={**env, "RAG_SECOND_MODEL": ""}, timeout=600, check=False)
    got, want = json.loads(remote.stdout), json.loads(local.stdout)
    assert not got["refused"] and "vautrin" in got["answer"].lower() and got["citations"]
    assert got["model"].startswith("default @ 127.0.0.1:")
    # The same model file, prompt and greedy decoding: the same checked, cited answer.
    assert (got["answer"], got["citations"]) == (want["answer"], want["citations"])
    t = got["timings"]
    assert t["prompt_tokens"] > 50 and t["completion_tokens"] > 0 and 0 < t["ttft_s"] < t["total_s"]
    assert t["decode_tps"] > 0


def test_a_second_model_server_answers_where_a_quote_would_stand(server, seeded):
    """RAG_SECOND_LLM_URL: the bundled 1.5B behind its own llama.cpp server, asked where the first
    model's answer would be replaced by a quote, gives the answer the in-process second model gives."""
    from rag.generation.models import resolve_model

    question = "Quelle agence de presse assistait à la conférence de presse donnée par Catherine Vautrin à Kiev ?"
    env = {**os.environ, "RAG_INDEX_DIR": str(seeded.index_dir)}
    with llama_server(model=resolve_model("quality", seeded.cache_dir), alias="quality") as second:
        remote = subprocess.run([RAG, "ask", question, "--json", "--llm-url", server], capture_output=True, text=True,
                                env={**env, "RAG_SECOND_LLM_URL": second}, timeout=900, check=False)
    assert remote.returncode == 0, remote.stderr
    local = subprocess.run([RAG, "ask", question, "--json"], capture_output=True, text=True, env=env, timeout=900, check=False)
    got, want = json.loads(remote.stdout), json.loads(local.stdout)
    # The first model's answer is quoted in-process too, and the second model's answer replaces the quote.
    assert want["timings"]["second_used"] and want["model"].startswith("qwen2.5-coder-1.5b")
    assert got["timings"]["second_used"] and got["model"] == f"quality @ {second.split('://', 1)[1].removesuffix('/v1')}"
    assert (got["answer"], got["citations"]) == (want["answer"], want["citations"])
    # Without a second server, a preset name on the first server's own is that server's model again: no one is asked.
    alone = subprocess.run([RAG, "ask", question, "--json", "--llm-url", server], capture_output=True, text=True,
                           env=env, timeout=900, check=False)
    assert "second_used" not in json.loads(alone.stdout)["timings"]


def test_token_counts_are_the_servers_own(server, seeded):
    from rag.generation.llama import LlamaGenerator
    from rag.generation.remote import remote_generator

    gen = remote_generator(seeded.replace(llm_url=server), "default")
    local = LlamaGenerator(default_model(), n_ctx=512, n_threads=1)
    for text in ["Qu'ont signé l'Ukraine et la France ?", "Rheinmetall, 2023 : la production a triplé."]:
        assert gen.count_tokens(text) == local.count_tokens(text)


def test_a_reader_that_stops_early_stops_the_generation(server, seeded):
    from rag.generation.remote import remote_generator

    gen = remote_generator(seeded.replace(llm_url=server), "default")
    long = [{"role": "user", "content": "Count from 1 to 400, one number per line."}]
    stream = gen.stream(long, max_tokens=1500)
    assert next(stream) and next(stream)
    stream.close()  # closes the HTTP stream: llama_cpp.server stops on the disconnect
    t0 = time.perf_counter()
    short = "".join(gen.stream([{"role": "user", "content": "Say OK."}], max_tokens=4))
    # The server runs one generation at a time: had the long one gone on, this would wait for
    # about 1,500 tokens (a minute here).
    assert short and time.perf_counter() - t0 < 15


def test_remote_embeddings_build_an_index_that_only_they_can_read(tmp_path):
    from rag.retrieval.embedders import make_embedder
    from rag.retrieval.remote import embedder_for
    from rag.retrieval.search import Retriever

    settings = Settings.from_env(docs_dir=SEEDS, index_dir=tmp_path / "index")
    with llama_server(embedding=True) as url:
        remote = embedder_for(settings.replace(embed_url=url))
        build_index(settings, remote)
        hits = Retriever(settings.index_dir, remote).search("Rheinmetall", 3)
        assert hits and "Rheinmetall" in " ".join(h.chunk.text for h in hits)
    assert remote.name == "remote:default" and remote.dim > 0
    local = make_embedder(settings.embedder, settings.cache_dir)
    with pytest.raises(IndexIncompatibleError, match="built with embedder 'remote:default'.*RAG_EMBED_URL"):
        Retriever(settings.index_dir, local).search("Rheinmetall", 3)
