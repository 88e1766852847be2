"""The judge (rag.answer.judge): before a quote stands, the second model's log-odds that it answers the
question; below the bar the documents are said not to answer. Before the first model's accepted answer
stands, the same score on the passages it cites; below its bar the answer goes the way of a failed one."""

import pytest

from conftest import make_assistant, write_doc
from rag.answer import judge as engine
from rag.answer.judge import messages
from rag.generation.base import FakeGenerator
from rag.generation.prompts import refusal_text

QUESTION = "When is the Brave1 France-Ukraine initiative due to become operational?"
TEXT = ("L'initiative Brave1 France-Ukraine accélère les projets communs. "
        "« Elle sera opérationnelle dès mars 2026 », a précisé le ministère.")
WANDERING = "I do not really know, maybe soon."  # fails the checks: a quote would replace it


class Judge(FakeGenerator):
    """A second model whose answers fail the checks and whose yes/no log-odds is set."""

    def __init__(self, odds):
        super().__init__([WANDERING])
        self.name, self.odds, self.judged = "second.gguf", odds, []

    def log_odds(self, chat, yes, no):
        self.judged.append((chat, yes, no))
        if isinstance(self.odds, Exception):
            raise self.odds
        return self.odds


def ask(corpus, second, checks="all", bar=0.0, monkeypatch=None):
    write_doc(corpus, "gamma.txt", TEXT)
    assistant, _ = make_assistant(corpus, [WANDERING])
    assistant.second = second
    assistant.settings = assistant.settings.replace(checks=checks)
    monkeypatch.setattr(engine, "MIN_ODDS", bar)
    return assistant.ask(QUESTION)


def test_a_quote_the_judge_reads_as_no_answer_is_refused(corpus, monkeypatch):
    judge = Judge(-2.0)
    answer = ask(corpus, judge, monkeypatch=monkeypatch)
    assert answer.refused and answer.text == refusal_text("en") and answer.outcome == "refusal"
    assert answer.decided_by == "judge" and answer.citations == ()
    assert answer.timings["judge_odds"] == -2.0 and "mars 2026" in answer.timings["judge_refused"]
    chat, yes, no = judge.judged[0]
    # It reads the question, the quoted sentence in the documents' words, and the passages.
    assert QUESTION in chat[-1]["content"] and "mars 2026" in chat[-1]["content"] and "yes" in yes and "no" in no


def test_a_quote_the_judge_reads_as_an_answer_stands(corpus, monkeypatch):
    answer = ask(corpus, Judge(3.0), monkeypatch=monkeypatch)
    assert answer.outcome == "quote" and "mars 2026" in answer.text and answer.timings["judge_odds"] == 3.0
    assert "judge_refused" not in answer.timings


@pytest.mark.parametrize("odds", [RuntimeError("llama.cpp failed"), None])
def test_a_judge_that_fails_or_gives_no_score_leaves_the_quote(corpus, monkeypatch, odds):
    answer = ask(corpus, Judge(odds), monkeypatch=monkeypatch)
    assert answer.outcome == "quote" and answer.timings["judge_odds"] is None


def test_a_second_model_without_logits_is_no_judge(corpus, monkeypatch):
    # A model server gives text, not the next word's logits: the quote stands as the checks made it.
    second = FakeGenerator([WANDERING])
    second.name = "second.gguf"
    answer = ask(corpus, second, monkeypatch=monkeypatch)
    assert answer.outcome == "quote" and answer.timings["judge_odds"] is None


def test_the_judge_is_switched_off_by_its_check_name(corpus, monkeypatch):
    judge = Judge(-2.0)
    answer = ask(corpus, judge, checks="all,-judge", monkeypatch=monkeypatch)
    assert answer.outcome == "quote" and judge.judged == [] and "judge_odds" not in answer.timings


def test_where_the_first_model_is_the_second_models_file_it_judges_itself(corpus, monkeypatch):
    # --model quality: the second model would be the same 1.5B; no second copy is loaded to judge.
    write_doc(corpus, "gamma.txt", TEXT)
    assistant, gen = make_assistant(corpus, [WANDERING])
    gen.log_odds = lambda chat, yes, no: -2.0
    second = Judge(3.0)
    second.name = gen.name
    assistant.second = second
    monkeypatch.setattr(engine, "MIN_ODDS", 0.0)
    answer = assistant.ask(QUESTION)
    assert answer.decided_by == "judge" and second.judged == [] and second.calls == []


RIGHT = "The Brave1 France-Ukraine initiative is due to become operational in March 2026."


def direct(corpus, judge, monkeypatch, bar=2.0, checks="all"):
    write_doc(corpus, "gamma.txt", TEXT)
    assistant, _ = make_assistant(corpus, [RIGHT])
    assistant.second = judge
    assistant.settings = assistant.settings.replace(checks=checks, judge_answers=True)
    monkeypatch.setattr(engine, "MIN_ODDS", 0.0)
    monkeypatch.setattr(engine, "MIN_ANSWER_ODDS", bar)
    return assistant.ask(QUESTION)


def test_a_direct_answer_the_judge_reads_as_said_stands(corpus, monkeypatch):
    judge = Judge(3.0)
    answer = direct(corpus, judge, monkeypatch)
    assert answer.outcome == "direct" and answer.text.startswith(RIGHT[:-1]) and answer.timings["answer_judge_odds"] == 3.0
    chat, _, _ = judge.judged[0]
    # It reads the passage the answer cites, the question and the answer, and nothing is generated.
    assert "mars 2026" in chat[-1]["content"] and QUESTION in chat[-1]["content"] and RIGHT in chat[-1]["content"]
    assert judge.calls == [] and "judge_overruled" not in answer.timings


def test_a_direct_answer_the_judge_overrules_goes_the_way_of_a_failed_one(corpus, monkeypatch):
    # Below the bar the small model's answer is treated as failing the checks: the quote is shown, the
    # second model asked (its answer here fails the checks, so the quote is judged and stands at 0.0).
    judge = Judge(1.0)
    answer = direct(corpus, judge, monkeypatch)
    assert answer.outcome == "quote" and "mars 2026" in answer.text and answer.decided_by == "judge"
    assert answer.checks_failed == ("judge",) and answer.timings["judge_overruled"] == RIGHT
    assert len(judge.calls) == 1 and len(judge.judged) == 2  # the answer, then the quote


def test_a_direct_answer_is_not_judged_by_default(corpus, monkeypatch):
    # Off unless asked for (Settings.judge_answers): it costs seconds after every answer.
    write_doc(corpus, "gamma.txt", TEXT)
    assistant, _ = make_assistant(corpus, [RIGHT])
    judge = Judge(-9.0)
    assistant.second = judge
    answer = assistant.ask(QUESTION)
    assert answer.outcome == "direct" and judge.judged == [] and judge.calls == [] and "answer_judge_odds" not in answer.timings


def test_the_answer_judge_is_switched_off_with_the_judge(corpus, monkeypatch):
    judge = Judge(-9.0)
    answer = direct(corpus, judge, monkeypatch, checks="all,-judge")
    assert answer.outcome == "direct" and judge.judged == [] and "answer_judge_odds" not in answer.timings


def test_the_answer_judge_without_a_score_leaves_the_answer(corpus, monkeypatch):
    answer = direct(corpus, Judge(RuntimeError("llama.cpp failed")), monkeypatch)
    assert answer.outcome == "direct" and answer.timings["answer_judge_odds"] is None


def test_the_second_models_own_answer_is_not_judged(corpus, monkeypatch):
    # With --model quality the answering model is the second model's file: there is no larger reader.
    write_doc(corpus, "gamma.txt", TEXT)
    assistant, gen = make_assistant(corpus, [RIGHT])
    gen.log_odds = lambda chat, yes, no: -9.0
    second = Judge(-9.0)
    second.name = gen.name
    assistant.second = second
    assistant.settings = assistant.settings.replace(judge_answers=True)
    monkeypatch.setattr(engine, "MIN_ANSWER_ODDS", 2.0)
    answer = assistant.ask(QUESTION)
    assert answer.outcome == "direct" and second.judged == [] and "answer_judge_odds" not in answer.timings


def test_the_judge_reads_the_quoted_passage_cut_to_a_bound():
    from rag.schema import Chunk, Hit

    chat = messages("Q?", "A.", [Hit(Chunk("a.txt#0", "a.txt", 0, 9000, "x" * 9000), 1.0, 1)])
    assert chat[0]["role"] == "system" and "Q?" in chat[1]["content"] and len(chat[1]["content"]) < 2600
