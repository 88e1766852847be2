"""Web chat logic with the fake generator: respond, follow-up rewrite, sessions, rendering, uploads."""

from __future__ import annotations

import re
import threading
from html.parser import HTMLParser
from pathlib import Path

import gradio as gr
import pytest
from conftest import make_assistant

from rag.answer.followup import (
    REWRITE_SYSTEM,
    apply_mapping,
    build_rewrite_messages,
    parse_rewrite,
    rewrite_followup,
    swap_number,
)
from rag.apps.web import (
    ChatService,
    ModelGate,
    Session,
    create_app,
    escape_markdown,
    launch_options,
    render_answer,
    render_sources,
    save_upload,
)
from rag.errors import InputError, ModelError
from rag.generation.llama import FakeGenerator
from rag.schema import Answer
from rag.text import values

HOSTILE = (
    'Le rapport secret mentionne <img src="http://evil.example/x.png" onerror="alert(1)"> et '
    "<script>alert('pwned')</script>. Voir ![pixel](http://evil.example/p.png) ou [cliquez](http://evil.example/a). "
    "Gabarit {{value}} ${1+1} $$x^2$$ &amp; fin."
)


class Tags(HTMLParser):
    """Every tag with its attributes, and the text a browser would show."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text = ""
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text += data


def final(steps):
    return steps[-1]


def answer_of(session: Session) -> Answer:
    return session.turns[-1].answer


# ---- respond: streaming, citations, sources panel --------------------------------------------


def test_respond_streams_then_links_citations_to_sources(corpus):
    assistant, gen = make_assistant(corpus, ["Fedorov a annoncé la production commune de drones avec la France [1]."])
    service = ChatService(assistant, corpus)
    steps = list(service.respond("Qui a annoncé la production commune de drones ?", None))

    streamed = [s[1][-1]["content"] for s in steps[1:-1]]
    assert len(streamed) >= 5, "the answer must reach the page piece by piece"
    assert all(len(a) <= len(b) for a, b in zip(streamed, streamed[1:]))
    assert all(s[2] is None for s in steps[:-1]), "the sources panel changes only once the answer is complete"

    _, messages, panel, session = final(steps)
    answer = answer_of(session)
    assert answer.citations, "the fake answer cites [1]"
    cited = answer.citations[0]
    assert messages[0] == {"role": "user", "content": escape_markdown("Qui a annoncé la production commune de drones ?")}
    link = Tags(messages[-1]["content"]).tags
    assert ("a", {"class": "rag-cite", "href": f"#rag-src-0-{cited.n}", "title": cited.source}) in link

    tags = Tags(panel)
    ids = [a.get("id") for _, a in tags.tags if a.get("id")]
    assert f"rag-src-0-{cited.n}" in ids
    assert cited.source in tags.text and f"characters {cited.start}–{cited.end}" in tags.text
    assert " ".join(cited.text.split()) in " ".join(tags.text.split())
    marks = re.findall(r"<mark[^>]*>(.*?)</mark>", panel, re.S)
    assert marks and "production commune de drones" in marks[0], "the supporting sentence is highlighted"
    # The engine got the question last, as `rag ask` sends it.
    assert "Qui a annoncé la production commune de drones ?" in gen.calls[-1][-1]["content"]


def test_sources_panel_and_chat_never_render_document_markup(corpus):
    (corpus.docs_dir / "hostile.txt").write_text(HOSTILE, encoding="utf-8")
    from rag.ingest.indexing import build_index
    from rag.retrieval.embedders import FakeEmbedder

    build_index(corpus, FakeEmbedder())
    # The model echoes markup from the document; the chat must show it as text.
    reply = "Le rapport secret mentionne ![pixel](http://evil.example/p.png) <b>gras</b> http://evil.example/z [1]."
    assistant, _ = make_assistant(corpus, [reply])
    service = ChatService(assistant, corpus)
    _, messages, panel, session = final(list(service.respond("Que mentionne le rapport secret ?", None)))
    answer = answer_of(session)
    assert any(c.source == "hostile.txt" for c in answer.citations)

    tags = Tags(panel)
    assert {t for t, _ in tags.tags} <= {"div", "span", "mark", "q", "details", "summary", "p", "a"}
    # The only links are the engine's own "open" links to the guarded /source/ route.
    opens = [dict(attrs) for t, attrs in tags.tags if t == "a"]
    assert opens and all(a.get("class") == "rag-open" and a["href"] == "/source/hostile.txt" for a in opens)
    assert "<script>alert('pwned')</script>" in tags.text and '<img src="http://evil.example/x.png"' in tags.text
    assert "{{value}} ${1+1}" in tags.text

    chat_html = messages[-1]["content"]  # Markdown source: the browser test checks the rendered page
    anchors = re.findall(r'<a class="rag-cite" href="([^"]+)" title="[^"<>]*">\[\d+\]</a>', chat_html)
    assert anchors and all(h.startswith("#rag-src-0-") for h in anchors)
    # Outside our own citation links every punctuation mark is escaped, so Markdown keeps it literal.
    rest = re.sub(r'<a class="rag-cite"[^>]*>\[\d+\]</a>', "", chat_html)
    assert not re.search(r"(?<!\\)[\[\]()!<>*_`:$]", rest.replace("\\\\", "")), rest


def test_render_answer_links_only_markers():
    html = render_answer("Deux faits [1][2]. Pas un lien [x](http://a.example) ni <i>balise</i>.", turn=3)
    assert re.findall(r'<a class="rag-cite" href="([^"]+)"', html) == ["#rag-src-3-1", "#rag-src-3-2"]
    assert html.count("<a ") == 2
    assert "\\[x\\]\\(http\\:" in html and "\\<i\\>" in html


def test_empty_sources_panel_is_plain():
    assert "Sources of the latest answer" in render_sources(None, 0)


# ---- follow-up questions --------------------------------------------------------------------


def test_followup_is_rewritten_with_the_previous_turn_before_retrieval(corpus):
    assistant, gen = make_assistant(corpus, [
        "Rustem Umerov est le ministre de la défense [1].",
        "ses → Rustem Umerov: Quels contrats Rustem Umerov a-t-il signés ?",
        "L'Ukraine a signé des dizaines de contrats [1].",
    ])
    service = ChatService(assistant, corpus)
    first = final(list(service.respond("Qui est le ministre de la défense ?", None)))[3]
    _, messages, panel, session = final(list(service.respond("Et ses contrats ?", first)))

    assert len(gen.calls) == 3, "answer, rewrite, answer"
    rewrite_prompt = gen.calls[1]
    assert rewrite_prompt[0] == {"role": "system", "content": REWRITE_SYSTEM}
    last = rewrite_prompt[-1]["content"]
    assert "Previous question: Qui est le ministre de la défense ?" in last
    assert "Previous answer: Rustem Umerov est le ministre de la défense." in last, "markers are dropped"
    assert last.rstrip().endswith("Follow-up question: Et ses contrats ?\nComplete question:")

    standalone = "Quels contrats Rustem Umerov a-t-il signés ?"
    assert f"Question: {standalone}" in gen.calls[2][-1]["content"], "the answer prompt gets the standalone question"
    assert [standalone] in assistant.retriever.embedder.calls, "retrieval searched the standalone question"
    answer = answer_of(session)
    assert answer.question == "Et ses contrats ?" and answer.standalone_question == standalone
    assert answer.to_dict()["standalone_question"] == standalone
    # Shown on demand: a folded message above the answer, and in the sources panel.
    folded = [m for m in messages if m.get("metadata")]
    assert folded == [{"role": "assistant", "content": escape_markdown(standalone),
                       "metadata": {"title": "Question as searched", "status": "done"}}]
    assert "<details" in panel and "Question as searched" in panel


def test_first_question_is_not_rewritten(corpus):
    assistant, gen = make_assistant(corpus, ["Rustem Umerov [1]."])
    answer = assistant.ask("Qui est le ministre de la défense ?")
    assert len(gen.calls) == 1 and answer.standalone_question is None
    assert "standalone_question" not in answer.to_dict()


HISTORY = [
    {"role": "user", "content": "Quel était le chiffre d'affaires de la coopérative en 2019 ?"},
    {"role": "assistant", "content": "Il était de 4 millions d'euros [1]."},
]


@pytest.mark.parametrize("reply", [
    "En 2020, le chiffre d'affaires était de 5 millions d'euros.",  # an answer, not a question
    "Quel était le chiffre d'affaires de la coopérative en 2019 ?",  # the previous question, follow-up lost
    "NOT FOUND",
    "",
    "Et en 2020 ?",  # nothing brought in from the conversation
    "Quel était le chiffre d'affaires de la coopérative en 2020 selon les 12 rapports ?",  # invented number
    "What was the cooperative's turnover in 2020 and how did it change compared with the previous year?",  # language
])
def test_rewrite_that_looks_wrong_falls_back_to_the_question(reply):
    question = "Et en 2020, qu'en était-il du chiffre d'affaires ?"
    standalone, lang = rewrite_followup(question, HISTORY, FakeGenerator([reply]))
    assert standalone == question and lang == "fr"


def test_good_rewrite_is_kept_and_named_substitution_is_applied():
    follow_up = "Et qu'en était-il en 2020 ?"  # more than a changed number: the model rewrites it
    gen = FakeGenerator(["2019 → 2020: Quel était le chiffre d'affaires de la coopérative en 2020 ?"])
    assert rewrite_followup(follow_up, HISTORY, gen)[0] == "Quel était le chiffre d'affaires de la coopérative en 2020 ?"
    assert len(gen.calls) == 1
    # The small model often names the substitution and then copies the previous question unchanged.
    gen = FakeGenerator(["2019 → 2020: Quel était le chiffre d'affaires de la coopérative en 2019 ?"])
    standalone, lang = rewrite_followup(follow_up, HISTORY, gen)
    assert standalone == "Quel était le chiffre d'affaires de la coopérative en 2020 ?" and lang == "fr"


def test_a_follow_up_that_only_changes_the_number_needs_no_model():
    gen = FakeGenerator(["En 2019, il était de 4 millions d'euros."])  # what the 0.5B model replied instead
    standalone, lang = rewrite_followup("Et en 2020 ?", HISTORY, gen)
    assert standalone == "Quel était le chiffre d'affaires de la coopérative en 2020 ?" and lang == "fr"
    assert not gen.calls
    assert swap_number("And in 2018?", "How many visitors came in 2015?") == "How many visitors came in 2018?"
    assert swap_number("Et en 2020 ?", "Quel budget en 2019 pour 12 écoles ?") is None, "which number changes is unclear"
    assert swap_number("Et en 2020, combien d'écoles ont ouvert ?", "Quel budget en 2019 ?") is None, "a new question"
    assert swap_number("Et Lille ?", "Quelle population en 2019 ?") is None


def test_named_substitution_applies_only_to_swapped_terms():
    q, mapping = parse_rewrite("it → the bridge: How long is it?")
    assert mapping == ("it", "the bridge")
    assert apply_mapping(q, mapping, "How long is it?", "When was the bridge built?") is None
    q, mapping = parse_rewrite("Lyon → Lille: Quelle est la population de Lyon ?")
    assert apply_mapping(q, mapping, "Et Lille ?", "Quelle est la population de Lyon ?") == "Quelle est la population de Lille ?"
    # Whole words only: "Lyonnais" is not "Lyon".
    assert apply_mapping("Les Lyonnais de Lyon ?", ("Lyon", "Lille"), "Et Lille ?", "Lyon ?") == "Les Lyonnais de Lille ?"


def test_rewrite_prompt_sees_only_the_last_exchange_without_refusals():
    history = [
        {"role": "user", "content": "Première question sur les ponts ?"},
        {"role": "assistant", "content": "Réponse sur les ponts [1]."},
        {"role": "user", "content": "Question sur les tours ?"},
        {"role": "assistant", "content": "Les documents ne contiennent pas la réponse à cette question."},
    ]
    last = build_rewrite_messages("Et leur hauteur ?", history)[-1]["content"]
    assert "Previous question: Question sur les tours ?" in last and "ponts" not in last
    assert "Previous answer" not in last


def test_no_history_no_model_call():
    gen = FakeGenerator(["should not be called"])
    assert rewrite_followup("Et en 2020 ?", [], gen)[0] == "Et en 2020 ?" and not gen.calls


# ---- sessions -------------------------------------------------------------------------------


def test_each_session_keeps_its_own_history(corpus):
    assistant, gen = make_assistant(corpus, ["Rustem Umerov [1]."])
    service = ChatService(assistant, corpus)
    tab_a = final(list(service.respond("Qui est le ministre de la défense ?", None)))[3]
    snapshot = [dict(m) for m in tab_a.messages]
    calls = len(gen.calls)
    tab_b = final(list(service.respond("Et ses contrats ?", None)))[3]
    assert len(gen.calls) == calls + 1, "tab B has no history, so no rewrite call"
    assert all("ministre" not in m["content"] for m in tab_b.messages)
    assert tab_a.messages == snapshot and len(tab_a.turns) == 1, "tab A is untouched"
    # respond never mutates the state it was given (Gradio keeps it per session).
    final(list(service.respond("Et ses contrats ?", tab_a)))
    assert tab_a.messages == snapshot


def test_clicking_an_earlier_answer_shows_its_sources(corpus):
    assistant, _ = make_assistant(corpus, ["Fedorov [1].", "Umerov [1]."])
    service = ChatService(assistant, corpus)
    s = final(list(service.respond("Qui a annoncé la production de drones ?", None)))[3]
    s = final(list(service.respond("Quel poste occupe Rustem Umerov ?", s)))[3]
    first_answer_index = 1
    assert 'id="rag-src-0-1"' in service.show_turn(s, first_answer_index)
    assert 'id="rag-src-1-' in service.show_turn(s, len(s.messages) - 1)
    assert 'id="rag-src-0-' not in service.show_turn(s, len(s.messages) - 1)


# ---- clear messages instead of tracebacks ----------------------------------------------------


def test_empty_question_is_a_message(corpus):
    assistant, gen = make_assistant(corpus, ["x"])
    _, messages, _, session = final(list(ChatService(assistant, corpus).respond("  \n ", None)))
    assert "The question is empty" in messages[-1]["content"].replace("\\", "")
    assert not gen.calls and session.turns[-1].answer is None


def test_missing_index_is_a_message(settings):
    assistant, _ = make_assistant(settings, ["x"])
    _, messages, _, _ = final(list(ChatService(assistant, settings).respond("Une question ?", None)))
    text = messages[-1]["content"].replace("\\", "")
    assert text.startswith("⚠️ No index in") and "Documents tab" in text


def test_model_failure_is_a_message_and_frees_the_model(corpus):
    assistant, gen = make_assistant(corpus, ["Une réponse assez longue pour échouer au milieu [1]."])
    gen.fail_after = 3
    service = ChatService(assistant, corpus)
    _, messages, _, session = final(list(service.respond("Qui a annoncé la production ?", None)))
    text = messages[-1]["content"].replace("\\", "")
    assert "Une réponse assez" in text, "what was streamed stays visible"
    assert "model failed while answering (RuntimeError: fake generator failure)" in text and session.turns[-1].answer is None
    gen.fail_after = None
    assert final(list(service.respond("Qui a annoncé la production ?", None)))[3].turns[-1].answer is not None


def test_model_error_sentence_is_shown_as_is(corpus):
    class Broken(FakeGenerator):
        def stream(self, messages, max_tokens, temperature=0.0):
            raise ModelError("llama.cpp could not load m.gguf (bad magic); check the file or choose another --model")
            yield ""

    assistant, _ = make_assistant(corpus, ["x"])
    assistant.generator = Broken()
    _, messages, _, _ = final(list(ChatService(assistant, corpus).respond("Une question ?", None)))
    assert messages[-1]["content"].replace("\\", "") == (
        "⚠️ Llama.cpp could not load m.gguf (bad magic); check the file or choose another --model")


# ---- serving: one model call at a time, bounded line ------------------------------------------


def test_full_line_gets_a_busy_message(corpus):
    assistant, gen = make_assistant(corpus, ["Fedorov [1]."])
    service = ChatService(assistant, corpus, max_waiting=0)
    ticket = service.gate.join()  # an answer in progress
    _, messages, _, _ = final(list(service.respond("Qui a annoncé la production ?", None)))
    assert "busy" in messages[-1]["content"] and not gen.calls
    service.gate.leave(ticket)
    assert final(list(service.respond("Qui a annoncé la production ?", None)))[3].turns[-1].answer is not None


def test_waiting_request_sees_its_place_then_gets_answered(corpus):
    assistant, _ = make_assistant(corpus, ["Fedorov [1]."])
    service = ChatService(assistant, corpus, max_waiting=1)
    ticket = service.gate.join()
    steps = service.respond("Qui a annoncé la production ?", None)
    next(steps)  # the question is shown at once
    assert "Waiting for the model (1 ahead of you)" in next(steps)[1][-1]["content"]
    threading.Timer(0.3, service.gate.leave, [ticket]).start()
    assert final(list(steps))[3].turns[-1].answer is not None


def test_stopping_mid_answer_frees_the_model(corpus):
    assistant, gen = make_assistant(corpus, ["Fedorov a annoncé la production commune de drones avec la France [1]."])
    service = ChatService(assistant, corpus, max_waiting=0)
    steps = service.respond("Qui a annoncé la production ?", None)
    for _ in range(4):
        next(steps)
    steps.close()  # what Gradio does when the user presses Stop
    assert not service.gate._line and not gen.lock.locked()
    assert final(list(service.respond("Qui a annoncé la production ?", None)))[3].turns[-1].answer is not None


def test_gate_is_first_come_first_served():
    gate = ModelGate(max_waiting=2)
    a, b, c = gate.join(), gate.join(), gate.join()
    assert gate.wait(a, 0) and not gate.wait(b, 0) and gate.ahead(c) == 2
    gate.leave(a)
    assert gate.wait(b, 0)


# ---- API object ------------------------------------------------------------------------------


def test_api_returns_the_rag_ask_json_object(corpus):
    assistant, _ = make_assistant(corpus, ["Fedorov a annoncé la production commune [1]."])
    service = ChatService(assistant, corpus)
    got = service.ask("Qui a annoncé la production commune ?")
    expected = assistant.ask("Qui a annoncé la production commune ?").to_dict()
    got.pop("timings"), expected.pop("timings")
    assert got == expected and got["citations"]


def test_api_errors_are_sentences(corpus):
    assistant, _ = make_assistant(corpus, ["x"])
    with pytest.raises(gr.Error, match="question is empty"):
        ChatService(assistant, corpus).ask("   ")


# ---- settings and documents ------------------------------------------------------------------


def test_status_reports_the_index(corpus, settings):
    assistant, _ = make_assistant(corpus, ["x"])
    status = ChatService(assistant, corpus).status().replace("\\", "")
    assert "2 files" in status and "fake-hash" in status and "Built:" in status and "alpha.txt" in status


def test_status_without_index_says_what_to_do(settings):
    assistant, _ = make_assistant(settings, ["x"])
    assert "none yet" in ChatService(assistant, settings).status()


def test_switching_model_replaces_the_generator(corpus):
    assistant, _ = make_assistant(corpus, ["old [1]."])
    loaded = []

    new = FakeGenerator(["Fedorov a annoncé la production commune de drones."])

    def loader(spec):
        if spec == "missing":
            raise ModelError("model preset 'missing' is not installed; run scripts/setup.sh")
        loaded.append(spec)
        return new, "other.gguf"

    service = ChatService(assistant, corpus, model_loader=loader)
    assert "other.gguf" in service.switch_model("quality").replace("\\", "") and loaded == ["quality"]
    assert service.ask("Qui a annoncé la production ?")["model"] == "other.gguf" and len(new.calls) == 1
    with pytest.raises(gr.Error, match="not installed"):
        service.switch_model("missing")
    assert assistant.model_label == "other.gguf" and not service.gate._line


def test_switching_to_the_second_model_reuses_it(corpus):
    """The model asked in place of quotes is loaded once: switching to it answers with it, not a second load."""
    from rag.generation.base import DeferredGenerator
    from rag.generation.models import model_label

    assistant, _ = make_assistant(corpus, ["old [1]."])
    second = FakeGenerator(["Fedorov a annoncé la production commune de drones [1]."])
    made = []
    assistant.second = DeferredGenerator(model_label("quality", corpus.requantize), lambda: made.append(1) or second)
    service = ChatService(assistant, corpus, model_loader=lambda spec: pytest.fail("loaded again"))
    service.switch_model("quality")
    assert assistant.generator is second and made == [1]
    assert service.ask("Qui a annoncé la production ?")["model"] == assistant.second.name


def test_upload_checks_type_size_and_content(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    src = tmp_path / "in"
    src.mkdir()

    def upload(name: str, data: bytes, max_mb: float = 1.0) -> str:
        p = src / name
        p.write_bytes(data)
        return save_upload(p, docs, max_mb)

    with pytest.raises(InputError, match="not a supported file"):
        upload("report.xlsx", b"PK\x03\x04")
    with pytest.raises(InputError, match="larger than"):
        upload("big.txt", b"a" * 2000, max_mb=0.001)
    with pytest.raises(InputError, match="binary content, not text"):
        upload("fake.txt", bytes(range(256)) * 10)
    with pytest.raises(InputError, match="empty"):
        upload("blank.md", b"   \n")
    assert upload("notes <v2>.md", "Des notes.".encode()) == "notes _v2_.md"
    assert sorted(p.name for p in docs.iterdir()) == ["notes _v2_.md"], "nothing else, no temporary file left"


def test_uploaded_document_is_answerable_right_away(corpus, tmp_path):
    assistant, _ = make_assistant(corpus, ["Le barrage de Vouglans retient 605 millions de mètres cubes [1]."])
    service = ChatService(assistant, corpus)
    new = tmp_path / "vouglans.txt"
    new.write_text("Le barrage de Vouglans retient 605 millions de mètres cubes d'eau dans le Jura.", encoding="utf-8")
    seen = []
    log = service.add_documents([str(new), str(tmp_path / "x.exe")], lambda done, total: seen.append((done, total)))
    assert "Added vouglans.txt" in log.replace("\\", "") and "1 added" in log and "not a supported file" in log
    assert seen and seen[-1][0] == seen[-1][1] > 0, "progress reached the end"
    result = service.ask("Combien d'eau retient le barrage de Vouglans ?")
    assert min(result["retrieved"], key=lambda r: r["rank"])["source"] == "vouglans.txt"
    assert not result["refused"]
    assert "3 files" in service.status()


def test_reindex_picks_up_files_in_the_folder(corpus):
    assistant, _ = make_assistant(corpus, ["x"])
    service = ChatService(assistant, corpus)
    (Path(corpus.docs_dir) / "gamma.md").write_text("# Gamma\n\nUn troisième document.", encoding="utf-8")
    first, again = service.reindex(), service.reindex()
    assert "1 added" in first and "2 unchanged" in first
    assert "0 added" in again and "3 unchanged" in again and "0 chunks embedded" in again
    assert "3 files" in service.status()


# ---- the page ---------------------------------------------------------------------------------


def test_create_app_builds_the_page_and_the_ask_endpoint_without_launching(corpus):
    assistant, _ = make_assistant(corpus, ["x"])
    demo = create_app(assistant, corpus)
    assert isinstance(demo, gr.Blocks) and not demo.is_running
    names = {fn.api_name for fn in demo.fns.values()}
    assert "ask" in names


def test_launch_options_are_local_only(settings):
    opts = launch_options(settings)
    assert opts["server_name"] == "127.0.0.1" and opts["share"] is False and opts["allowed_paths"] == []
    assert opts["server_port"] == 7860


def test_checked_answer_replaces_what_was_streamed(corpus):
    from rag.answer.assistant import Replace

    assistant, _ = make_assistant(corpus, ["Fedorov a annoncé la production commune de drones."])
    real = assistant.ask("Qui a annoncé la production commune de drones ?")

    def stream(question, **kwargs):
        yield "Une phrase non soutenue "
        yield "par les documents."
        yield Replace("Texte vérifié.")
        yield real

    assistant.stream = stream
    steps = list(ChatService(assistant, corpus).respond("Qui a annoncé la production commune de drones ?", None))
    shown = [s[1][-1]["content"].replace("\\", "") for s in steps]
    assert "Une phrase non soutenue par les documents." in shown
    assert "Texte vérifié." in shown, "the replacement is shown instead of being appended"
    assert shown[-1] == render_answer(real.text, 0, real.citations).replace("\\", "")


def test_warm_up_runs_once_in_the_background(corpus, monkeypatch):
    assistant, _ = make_assistant(corpus, ["x"])
    warmed = threading.Event()
    assistant.warm = warmed.set
    service = ChatService(assistant, corpus)
    before = len(assistant.retriever.embedder.calls)
    read = []
    monkeypatch.setattr(values, "warm", read.append)
    service.warm_up()
    service.warm_up()  # a second page view must not load anything again
    assert warmed.wait(5)
    for _ in range(50):
        if read:
            break
        threading.Event().wait(0.05)
    assert len(assistant.retriever.embedder.calls) == before + 1
    lang = assistant.retriever.data.manifest.language
    assert lang and read == [(lang,)], "the documents' number words are read before any question"


def test_a_failed_turn_keeps_later_citation_anchors_in_step(corpus):
    assistant, gen = make_assistant(corpus, ["Fedorov a annoncé la production commune de drones."])
    service = ChatService(assistant, corpus)
    s = final(list(service.respond("   ", None)))[3]  # no answer: still turn 0
    _, messages, panel, s = final(list(service.respond("Qui a annoncé la production commune de drones ?", s)))
    assert [t.answer is None for t in s.turns] == [True, False]
    assert 'id="rag-src-1-' in panel and 'href="#rag-src-1-' in messages[-1]["content"]
    assert "no answer" in service.show_turn(s, 1)
    assert 'id="rag-src-1-' in service.show_turn(s, len(s.messages) - 1)
    assert len(gen.calls) == 1, "the failed turn is no history for a rewrite"
