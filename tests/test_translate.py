"""Cross-lingual retrieval: a question in another language than the documents is also searched in
theirs, translated by the model; the answer is still asked for in the question's language."""

from conftest import make_assistant

from rag.answer.translate import search_query, translate_question
from rag.generation.base import FakeGenerator


def test_a_question_in_another_language_is_searched_with_its_translation(corpus):
    settings = corpus.replace(translate_queries=True)
    assistant, gen = make_assistant(settings, ["Quelles bombes guidées sont produites en volumes records ?",
                                               "Les bombes AASM Hammer sont produites en volumes records."])
    answer = assistant.ask("Which guided bombs are produced in record volumes?")
    translate, answer_prompt = gen.calls
    assert "Translate into French" in translate[-1]["content"]
    assert "Answer the question in English" in answer_prompt[-1]["content"]
    assert answer.timings["translation"].startswith("Quelles bombes")
    assert answer.citations and answer.citations[0].source == "alpha.txt"


def test_a_question_in_the_documents_language_is_not_translated(corpus):
    assistant, gen = make_assistant(corpus.replace(translate_queries=True), ["Rustem Umerov est le ministre de la défense."])
    assistant.ask("Qui est le ministre de la défense ?")
    assert len(gen.calls) == 1 and "translation" not in assistant.ask("Qui est le ministre de la défense ?").timings


def test_an_answer_instead_of_a_translation_is_not_searched():
    long_reply = "Sure! " + "The bombs are produced in record volumes by many factories. " * 5
    assert translate_question("Which bombs?", "fr", FakeGenerator([long_reply])) is None
    assert translate_question("Which bombs?", "fr", FakeGenerator(['"Quelles bombes ?"'])) == "Quelles bombes ?"
    assert search_query("Which bombs?", None) == "Which bombs?"
    assert search_query("Which bombs?", "Quelles bombes ?") == "Which bombs?\nQuelles bombes ?"
