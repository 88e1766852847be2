"""The second model (Settings.second_model): asked on the same prompt when the first model's answer
fails the checks and a quote would take its place; its answer is given only when it passes them."""

import logging

import pytest

from conftest import make_assistant, write_doc
from rag.answer.assistant import Replace
from rag.errors import ModelError
from rag.generation.prompts import quote_lead
from rag.generation.base import DeferredGenerator, FakeGenerator

QUESTION = "When is the Brave1 France-Ukraine initiative due to become operational?"
TEXT = ("L'initiative Brave1 France-Ukraine accélère les projets communs. "
        "« Elle sera opérationnelle dès mars 2026 », a précisé le ministère.")
WANDERING = "I do not really know, maybe soon."  # fails the checks: a quote would replace it
RIGHT = "The Brave1 France-Ukraine initiative is due to become operational in March 2026."


def with_second(corpus, first: list[str], second: list[str], name: str = "second.gguf"):
    write_doc(corpus, "gamma.txt", TEXT)
    assistant, gen = make_assistant(corpus, first)
    other = FakeGenerator(second)
    other.name = name
    assistant.second = other
    return assistant, gen, other


def test_the_second_models_checked_answer_takes_the_quotes_place(corpus):
    assistant, gen, other = with_second(corpus, [WANDERING], [RIGHT])
    answer = assistant.ask(QUESTION)
    assert answer.outcome == "direct" and answer.model == "second.gguf", answer.text
    assert answer.text == RIGHT.replace(".", " [1].") and answer.citations[0].source == "gamma.txt"
    assert other.calls == gen.calls  # the same prompt, word for word
    assert answer.timings["second_used"] and answer.decided_by is not None  # the check the first answer failed


def test_a_second_answer_that_fails_the_checks_leaves_the_quote(corpus):
    assistant, _, other = with_second(corpus, [WANDERING], [RIGHT.replace("2026", "1999")])
    answer = assistant.ask(QUESTION)
    assert answer.outcome == "quote" and answer.model != "second.gguf" and len(other.calls) == 1
    assert "1999" not in answer.text and "mars 2026" in answer.text
    assert answer.timings["second_used"] is False


@pytest.mark.parametrize("first", [
    RIGHT,  # passes: nothing to ask
    "NOT FOUND",  # the model's own refusal: asked again, the larger one answered unanswerable questions
])
def test_the_second_model_is_asked_only_in_place_of_a_quote(corpus, first):
    assistant, _, other = with_second(corpus, [first], [RIGHT])
    answer = assistant.ask(QUESTION)
    assert other.calls == [] and "second_s" not in answer.timings


def test_the_same_model_is_not_asked_twice(corpus):
    assistant, _, other = with_second(corpus, [WANDERING], [RIGHT], name="fake")
    assert assistant.ask(QUESTION).outcome == "quote" and other.calls == []


def test_a_second_model_that_cannot_load_leaves_the_quote_and_says_so_once(corpus, caplog):
    write_doc(corpus, "gamma.txt", TEXT)
    assistant, _ = make_assistant(corpus, [WANDERING])
    made = []

    def make():
        made.append(1)
        raise ModelError("model preset 'quality' is not installed; run scripts/setup.sh")

    assistant.second = DeferredGenerator("big.gguf", make)
    with caplog.at_level(logging.WARNING, logger="rag.answer.assistant"):
        answers = [assistant.ask(QUESTION) for _ in range(2)]
    assert all(a.outcome == "quote" for a in answers) and made == [1]
    assert [r.getMessage() for r in caplog.records].count(
        "the second model big.gguf is not used: model preset 'quality' is not installed; run scripts/setup.sh") == 1


def test_a_deferred_generator_is_made_on_first_use_only():
    made = []
    deferred = DeferredGenerator("big.gguf", lambda: made.append(1) or FakeGenerator(["oui"]))
    assert made == [] and deferred.name == "big.gguf"
    assert "".join(deferred.stream([{"role": "user", "content": "?"}], 8)).strip() == "oui"
    assert deferred.count_tokens("abcd") == 1 and made == [1]


def test_the_quote_is_shown_while_the_second_model_answers(corpus):
    assistant, _, _ = with_second(corpus, [WANDERING], [RIGHT])
    items = list(assistant.stream(QUESTION))
    replaced = [str(i) for i in items if isinstance(i, Replace)]
    assert len(replaced) == 2 and replaced[0].startswith(quote_lead("en")) and replaced[1] == items[-1].text


def test_where_the_checks_refuse_the_second_model_is_not_asked(corpus):
    # Without the quote fallback a failed answer is refused: asked there, the larger model invented
    # answers to unanswerable questions (docs/quality.md, "Tenth round").
    assistant, _, other = with_second(corpus, [WANDERING], [RIGHT])
    assistant.settings = assistant.settings.replace(checks="all,-quote")
    answer = assistant.ask(QUESTION)
    assert answer.refused and other.calls == [] and "second_s" not in answer.timings


def test_a_compound_question_counts_the_second_models_part(corpus):
    assistant, _, other = with_second(corpus, [WANDERING, RIGHT], [RIGHT])
    answer = assistant.ask("When is the Brave1 France-Ukraine initiative due to become operational, "
                           "and who is the Ukrainian defence minister?")
    assert len(answer.timings["parts"]) == 2 and other.calls, answer.timings
    assert answer.timings["second_used"] and "second.gguf" in answer.model.split(" + ")


def test_a_deferred_generators_failure_does_not_grow_with_each_call():
    deferred = DeferredGenerator("big.gguf", lambda: (_ for _ in ()).throw(ModelError("not installed")))
    depths = []
    for _ in range(3):
        with pytest.raises(ModelError) as caught:
            deferred.stream([], 8)
        tb, n = caught.value.__traceback__, 0
        while tb is not None:
            tb, n = tb.tb_next, n + 1
        depths.append(n)
    assert depths[0] == depths[1] == depths[2]


def test_the_second_model_is_chosen_by_name_and_only_when_installed(monkeypatch):
    from rag.generation import models

    assert models.model_label("quality") == models.PRESETS["quality"].filename
    assert models.model_label("default").endswith(".q4_0.gguf") and models.model_label("default", False) == models.PRESETS["default"].filename
    assert models.model_label("~/m/x.gguf") == "x.gguf" and models.preset_installed("~/m/x.gguf")
    monkeypatch.setitem(models.PRESETS, "quality", models.PRESETS["quality"].__class__(
        **{**models.PRESETS["quality"].__dict__, "parts": (("no-such-distribution-xyz", "part01.bin"),)}))
    assert not models.preset_installed("quality")


def test_the_web_chat_warms_the_second_model_unless_it_answers_first(corpus):
    from rag.apps.web.service import ChatService

    class Loading(FakeGenerator):
        loads = 0

        @property
        def llm(self):
            Loading.loads += 1
            return self

    for name, expected in (("second.gguf", 1), ("fake", 0)):
        assistant, _ = make_assistant(corpus, [RIGHT])
        assistant.second = Loading([RIGHT])
        assistant.second.name = name
        Loading.loads = 0
        service = ChatService(assistant, corpus, model_loader=lambda spec: (FakeGenerator(), "fake"))
        service.warm_up()
        import threading
        for t in threading.enumerate():
            if t.name == "rag-warm-up":
                t.join(30)
        assert Loading.loads == expected, name


def test_eval_replays_the_second_models_replies_under_its_name(corpus, tmp_path, monkeypatch):
    from rag.measure.evaluate import run_questions
    from rag.measure.metrics import Question

    monkeypatch.setenv("RAG_EVAL_CACHE", str(tmp_path / "cache.jsonl"))
    write_doc(corpus, "gamma.txt", TEXT)
    questions = [Question("q1", QUESTION, keywords=("2026",))]
    assistant, _ = make_assistant(corpus, [WANDERING])
    assistant.second = other = FakeGenerator([RIGHT])
    other.name = "second.gguf"
    first = run_questions(assistant, questions)
    assert assistant.second is other and first[0]["metrics"]["second_used"] and first[0]["metrics"]["correct"]
    # The same prompt again: the reply comes from the cache, under the second model's name.
    assistant, _ = make_assistant(corpus, [WANDERING])
    assistant.second = silent = FakeGenerator(["never used"])
    silent.name = "second.gguf"
    again = run_questions(assistant, questions)
    assert silent.calls == [] and again[0]["answer"]["answer"] == first[0]["answer"]["answer"]


def test_a_quote_that_stands_is_translated_by_the_second_model(corpus):
    from test_translate import BRAVE, TRANSLATED

    write_doc(corpus, "gamma.txt", BRAVE)
    assistant, gen = make_assistant(corpus.replace(translate_quotes=True), ["Maybe soon, the team hopes."])
    # Its own answer fails the checks too; then it translates the quote that stands.
    assistant.second = other = FakeGenerator(["Perhaps one day.", TRANSLATED])
    other.name = "second.gguf"
    answer = assistant.ask("When will the Brave1 France-Ukraine initiative be operational?")
    assert len(gen.calls) == 1 and len(other.calls) == 2 and "Translate into English" in other.calls[1][-1]["content"]
    assert answer.outcome == "quote" and answer.text == f"{quote_lead('en', translated=True)} « {TRANSLATED} » [1]"
    assert answer.citations[0].source == "gamma.txt"


def test_the_second_models_answer_is_spared_the_rank_check(corpus):
    # The date is in the sentence after the one most about the question: the small model's answer
    # resting there fails `rank` and is quoted over; the 1.5B's same answer is given.
    write_doc(corpus, "gamma.txt", "L'initiative Brave1 France-Ukraine accélère les projets communs. "
                                   "Elle sera opérationnelle dès mars 2026.")
    question = "Quand l'initiative Brave1 France-Ukraine sera-t-elle opérationnelle ?"
    reply = "L'initiative Brave1 sera opérationnelle dès mars 2026."
    alone, _ = make_assistant(corpus, [reply])
    first = alone.ask(question)
    assert first.outcome == "quote" and first.checks_failed == ("rank",), first.checks_failed
    assistant, _ = make_assistant(corpus, ["Je ne sais pas vraiment, peut-être bientôt."])
    assistant.second = other = FakeGenerator([reply])
    other.name = "second.gguf"
    answer = assistant.ask(question)
    assert answer.outcome == "direct" and answer.model == "second.gguf" and "mars 2026 [1]" in answer.text, answer.text
