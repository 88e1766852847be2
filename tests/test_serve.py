"""`rag serve`: one process serving the web chat and the OpenAI-compatible API on one engine, local
by default, behind a key when exposed. Fast tier: the built ASGI app with the fake generator. Slow
tier: the real `rag serve` on loopback with the real default model, driven by the `openai` client."""

from __future__ import annotations

import re
import threading

import pytest
from conftest import SEEDS, make_assistant
from fastapi.testclient import TestClient
from helpers import rag_serve

from rag.apps.web.launch import build_server, check_exposure
from rag.errors import ConfigError


def test_beyond_this_machine_needs_a_key_or_an_explicit_no_auth(settings):
    check_exposure(settings, no_auth=False)  # 127.0.0.1: fine
    with pytest.raises(ConfigError, match="set RAG_API_KEY.*or pass --no-auth"):
        check_exposure(settings.replace(host="0.0.0.0"), no_auth=False)
    check_exposure(settings.replace(host="0.0.0.0", api_key="s3cret"), no_auth=False)
    check_exposure(settings.replace(host="0.0.0.0"), no_auth=True)


def test_one_app_serves_chat_and_api_and_the_key_guards_both(corpus):
    settings = corpus.replace(api_key="s3cret")
    assistant, _ = make_assistant(settings, ["Rustem Umerov est le ministre de la défense."])
    client = TestClient(build_server(assistant, settings))
    assert client.get("/health").status_code == 200, "health stays open for load balancers"
    assert client.get("/").status_code == 401 and client.get("/v1/models").status_code == 401
    assert client.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).json()["data"][0]["id"] == "rag"
    page = client.get("/?token=s3cret")
    assert page.status_code == 200 and "<html" in page.text.lower() and "rag_token" in page.headers.get("set-cookie", "")
    assert client.get("/").status_code == 200, "the cookie the token set lets the chat's own requests in"


def test_without_a_key_the_local_server_answers_both(corpus):
    assistant, _ = make_assistant(corpus, ["Rustem Umerov est le ministre de la défense."])
    client = TestClient(build_server(assistant, corpus))
    assert client.get("/").status_code == 200
    body = {"model": "rag", "messages": [{"role": "user", "content": "Qui est le ministre de la défense ?"}]}
    assert "Umerov" in client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]


@pytest.fixture(scope="module")
def real_server(seed_index):
    """`rag serve` as a user starts it, on the seeds with the bundled default model."""
    with rag_serve(seed_index, env={"RAG_DOCS_DIR": str(SEEDS), "RAG_API_KEY": "s3cret"}) as url:
        yield url


@pytest.mark.slow
def test_the_openai_client_streams_a_cited_answer_from_rag_serve(real_server):
    from openai import OpenAI

    client = OpenAI(base_url=f"{real_server}/v1", api_key="s3cret", max_retries=0, timeout=300)
    assert [m.id for m in client.models.list()] == ["rag"]
    stream = client.chat.completions.create(model="rag", stream=True, messages=[
        {"role": "user", "content": "Quel fabricant d'armes public ukrainien a rendu compte de la production ?"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    last = chunks[-1].model_dump()
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", text)}
    assert "Ukroboronprom" in text and cited
    assert {c["n"] for c in last.get("citations", [])} == cited
    assert all(c["source"].endswith(".txt") and c["text"] for c in last["citations"])


@pytest.mark.slow
def test_four_concurrent_clients_and_one_that_hangs_up(real_server):
    from openai import OpenAI

    client = OpenAI(base_url=f"{real_server}/v1", api_key="s3cret", max_retries=0, timeout=600)
    question = {"role": "user", "content": "Qu'ont signé l'Ukraine et la France ?"}
    # One client opens a stream and leaves after its first event: the server must carry on.
    gone = client.chat.completions.create(model="rag", stream=True, messages=[question])
    next(iter(gone))
    gone.close()
    answers, errors = [], []

    def ask():
        try:
            r = client.chat.completions.create(model="rag", messages=[question])
            answers.append(r.choices[0].message.content)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors and len(answers) == 4 and all(a.strip() for a in answers)
    assert len(set(answers)) == 1, "greedy answers to the same question are the same, queued or not"


def test_a_citation_opens_its_indexed_file_and_nothing_else(corpus, tmp_path):
    from documents import pdf_bytes

    from rag.apps.web.render import open_link, render_sources
    from rag.ingest.indexing import build_index
    from rag.retrieval.embedders import FakeEmbedder

    (corpus.docs_dir / "manual.pdf").write_bytes(pdf_bytes([["Premier chapitre sur les pompes."], ["Les vannes ferment."]]))
    (tmp_path / "secret.txt").write_text("secret", encoding="utf-8")
    (corpus.docs_dir / "escape.txt").symlink_to(tmp_path / "secret.txt")
    build_index(corpus, FakeEmbedder())
    (corpus.docs_dir / "later.txt").write_text("not indexed yet", encoding="utf-8")
    assistant, _ = make_assistant(corpus, ["Les vannes ferment."])
    client = TestClient(build_server(assistant, corpus))

    pdf = client.get("/source/manual.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    text = client.get("/source/alpha.txt")
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert text.headers["content-security-policy"] == "sandbox" and "Fedorov" in text.text
    for path in ("later.txt", "escape.txt", "../secret.txt", "%2e%2e/secret.txt", "/etc/passwd", "nothing.pdf"):
        assert client.get(f"/source/{path}").status_code == 404, path

    answer = assistant.ask("Que font les vannes ?")
    pdf_cites = [c for c in answer.citations if c.source == "manual.pdf"]
    assert pdf_cites and (pdf_cites[0].page, pdf_cites[0].page_end) == (1, 2)  # one chunk over both pages
    assert 'href="/source/manual.pdf#page=1"' in open_link(pdf_cites[0])
    assert "manual.pdf, p. 1-2" in render_sources(answer, 1)


def test_a_pdf_upload_is_accepted_and_a_mislabelled_one_refused(tmp_path):
    from documents import docx_bytes, pdf_bytes

    from rag.apps.web.uploads import save_upload
    from rag.errors import InputError

    docs = tmp_path / "docs"
    docs.mkdir()
    for name, data in (("manual.pdf", pdf_bytes([["Les vannes ferment."]])), ("notes.docx", docx_bytes())):
        (tmp_path / name).write_bytes(data)
        assert save_upload(tmp_path / name, docs, 20) == name and (docs / name).read_bytes() == data
    (tmp_path / "fake.pdf").write_text("<html>not a pdf</html>", encoding="utf-8")
    with pytest.raises(InputError, match="fake.pdf"):
        save_upload(tmp_path / "fake.pdf", docs, 20)
    assert not (docs / "fake.pdf").exists()
