"""The web chat as a real server: Gradio on a free local port, called with gradio_client and HTTP
(slow tier: a launched server; the fast tier drives the same app in-process, test_ui and test_serve)."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, make_assistant, make_settings, write_tiny_corpus
from helpers import served_app

from rag.config import Settings
from rag.generation.llama import FakeGenerator

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402

# Gradio's upload cache under each test's folder; every test here launches a real server.
pytestmark = [pytest.mark.usefixtures("gradio_tmp"), pytest.mark.slow]

ANSWER_KEYS = {"question", "answer", "refused", "citations", "retrieved", "model", "language", "timings",
               "outcome", "decided_by", "checks_failed"}


class SlowGenerator(FakeGenerator):
    """The fake, one word every `delay` seconds, so a request can still be running when the next comes."""

    def __init__(self, replies, delay: float = 0.2):
        super().__init__(replies)
        self.delay = delay
        self.started = threading.Event()

    def stream(self, messages, max_tokens, temperature=0.0):
        self.started.set()
        for piece in super().stream(messages, max_tokens, temperature):
            time.sleep(self.delay)
            yield piece


ANSWER = "Fedorov a annoncé la production commune de drones avec la France [1]."


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One app for the tests that only ask it, launched once for the module (a launch was most of
    each test's time)."""
    tmp = tmp_path_factory.mktemp("ui-server")
    corpus = write_tiny_corpus(make_settings(tmp))
    assistant, gen = make_assistant(corpus, [ANSWER])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(tmp / "gradio"))
        with served_app(assistant, corpus) as (url, _):
            yield url, gen, corpus


@pytest.fixture
def served(server):
    url, gen, corpus = server
    gen.replies, gen.calls = [ANSWER], []  # each test starts from the fake's first reply
    return server


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_ask_endpoint_returns_the_rag_ask_json_object(served):
    url, gen, corpus = served
    client = Client(url, verbose=False)
    assert "/ask" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    result = client.predict("Qui a annoncé la production commune de drones ?", api_name="/ask")
    assert set(result) == ANSWER_KEYS
    assert result["question"] == "Qui a annoncé la production commune de drones ?" and not result["refused"]
    files = {p.name for p in Path(corpus.docs_dir).iterdir()}
    assert result["citations"] and {c["source"] for c in result["citations"]} <= files
    for c in result["citations"]:
        text = (Path(corpus.docs_dir) / c["source"]).read_text(encoding="utf-8")
        assert text[c["start"]:c["end"]] == c["text"], "a citation points at the exact passage of the file"
    assert re.search(r"\[\d\]", result["answer"])
    json.dumps(result)  # the same plain JSON object `rag ask --json` prints


def test_ask_endpoint_rewrites_a_followup_given_history(served):
    url, gen, _ = served
    gen.replies = ["ses → Rustem Umerov: Quels contrats Rustem Umerov a-t-il signés ?", "Des dizaines de contrats [1]."]
    history = [{"role": "user", "content": "Qui est le ministre de la défense ?"},
               {"role": "assistant", "content": "Rustem Umerov est le ministre de la défense [1]."}]
    result = Client(url, verbose=False).predict(question="Et ses contrats ?", history=history, api_name="/ask")
    assert result["standalone_question"] == "Quels contrats Rustem Umerov a-t-il signés ?"


def test_errors_come_back_as_sentences(served):
    url, _, _ = served
    with pytest.raises(Exception, match="question is empty; type a question"):
        Client(url, verbose=False).predict("   ", api_name="/ask")


def test_file_route_serves_nothing_outside_the_app(served):
    url, _, corpus = served
    manifest = next(Path(corpus.index_dir).glob("gen-*/manifest.json"))
    secrets = ["/etc/passwd", str(Path(corpus.docs_dir) / "alpha.txt"), str(manifest), str(ROOT / "rag" / "ui.py"),
               str(Path(corpus.docs_dir) / ".." / ".." / ".." / "etc" / "passwd")]
    for path in secrets:
        for route in ("gradio_api/file=", "file="):
            status, body = get(url + route + path)
            assert status in (403, 404), f"{route}{path} answered {status}"
            assert b"root:" not in body and b"Fedorov" not in body and b"format_version" not in body
    status, _ = get(url)
    assert status == 200


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on port, from the kernel's own tables."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(addr)
    return found


def test_server_listens_on_loopback_only(served):
    url, _, _ = served
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp to read listening sockets from")
    port = int(url.rsplit(":", 1)[1].strip("/"))
    assert listening_addresses(port) == {"0100007F"}, "only 127.0.0.1, never 0.0.0.0 or ::"


def test_full_line_is_told_busy_and_the_running_answer_completes(corpus):
    assistant, _ = make_assistant(corpus, ["x"])
    slow = SlowGenerator(["Fedorov a annoncé la production commune de drones [1]."], delay=0.3)
    assistant.generator = slow
    with served_app(assistant, corpus, max_waiting=0) as (url, _):
        first = Client(url, verbose=False).submit("Qui a annoncé la production ?", api_name="/ask")
        assert slow.started.wait(30)
        t0 = time.perf_counter()
        assert get(url)[0] == 200 and get(url + "config")[0] == 200
        assert time.perf_counter() - t0 < 5, "the page must load while the model is answering"
        with pytest.raises(Exception, match="busy"):
            Client(url, verbose=False).predict("Qui est le ministre de la défense ?", api_name="/ask")
        assert first.result(timeout=60)["citations"]
        slow.delay = 0  # the busy line is proven; the next answer need not be slow (2.4 s of sleep)
        # Once the model is free again, the next question goes through.
        assert not Client(url, verbose=False).predict("Qui est le ministre ?", api_name="/ask")["refused"]


def test_real_model_answers_with_citations_over_http(seed_index):
    from rag.answer.assistant import build_assistant

    settings = Settings.from_env(docs_dir=ROOT / "seeds", index_dir=seed_index)
    questions = [json.loads(line) for line in (ROOT / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    cases = [q for q in questions if q.get("answerable")][:4]
    seeds = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "seeds").iterdir()}
    answered = []
    with served_app(build_assistant(settings), settings) as (url, _):
        client = Client(url, verbose=False)
        for case in cases:
            result = client.predict(case["question"], api_name="/ask")
            # A compound question also says how it was split ("standalone_question").
            assert ANSWER_KEYS <= set(result) <= ANSWER_KEYS | {"standalone_question"} and result["model"].endswith(".gguf")
            for c in result["citations"]:
                assert seeds[c["source"]][c["start"]:c["end"]] == c["text"]
            if not result["refused"] and result["citations"]:
                answered.append((case, result))
    # The small model does not answer every question; the served engine must answer some, from the right file.
    assert answered, "no answerable eval question got a cited answer through the web API"
    for case, result in answered:
        assert {c["source"] for c in result["citations"]} & set(case["sources"]), (case["id"], result["answer"])


def test_real_model_followup_is_rewritten_and_answered_over_http(tmp_path):
    """The issue's scenario: a question about one year, then "Et en <year> ?", with the real model."""
    from rag.answer.assistant import build_assistant
    from rag.ingest.indexing import build_index
    from rag.retrieval.embedders import make_embedder

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "usine.txt").write_text(
        "Rapport annuel de l'usine de Tarbes.\n\n"
        "En 2023, l'usine a produit 12 400 moteurs électriques, soit une hausse de 8 % par rapport à 2022.\n\n"
        "En 2024, la production de l'usine a atteint 15 900 moteurs électriques grâce à une deuxième ligne d'assemblage.\n\n"
        "L'usine emploie 430 personnes et prévoit d'ouvrir un centre de formation en 2026.\n", encoding="utf-8")
    (docs / "cantine.txt").write_text(
        "La cantine de l'usine sert 300 repas par jour. Elle a été rénovée en 2021.\n", encoding="utf-8")
    settings = Settings.from_env(docs_dir=docs, index_dir=tmp_path / "index")
    build_index(settings, make_embedder(settings.embedder, settings.cache_dir, settings.n_threads))
    with served_app(build_assistant(settings), settings) as (url, _):
        client = Client(url, verbose=False)
        first = client.predict("Combien de moteurs l'usine a-t-elle produits en 2023 ?", api_name="/ask")
        history = [{"role": "user", "content": first["question"]}, {"role": "assistant", "content": first["answer"]}]
        follow = client.predict(question="Et en 2024 ?", history=history, api_name="/ask")
    standalone = follow.get("standalone_question", "")
    assert "2024" in standalone and "2023" not in standalone and len(standalone) > len("Et en 2024 ?"), follow
    assert not follow["refused"], follow["answer"]
    assert re.search(r"15[\s\u202f]?900", follow["answer"]) and "12 400" not in follow["answer"], follow["answer"]
    assert any("2024" in c["text"] for c in follow["citations"])
