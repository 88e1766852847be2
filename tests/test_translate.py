"""Cross-lingual retrieval: a question in another language than the documents is also searched in
theirs, translated by the model; the answer is still asked for in the question's language."""

import pytest
from conftest import make_assistant

from rag.answer.assistant import Replace
from rag.answer.translate import kept_tokens, search_query, translate_question, usable_translation
from rag.generation.base import FakeGenerator
from rag.generation.prompts import quote_lead
from rag.ingest.indexing import build_index
from rag.retrieval.embedders import FakeEmbedder


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


# --- quotes in the documents' language, shown in the question's (issue #21) -------------------------

BRAVE = ("L'initiative Brave1 France-Ukraine accélère les projets communs. "
         "Elle sera opérationnelle dès mars 2026.")
TRANSLATED = "The Brave1 France-Ukraine initiative speeds up joint projects. It will be operational from March 2026."


def quoting_assistant(corpus, replies):
    (corpus.docs_dir / "gamma.txt").write_text(BRAVE, encoding="utf-8")
    build_index(corpus, FakeEmbedder())
    return make_assistant(corpus.replace(translate_quotes=True), replies)


def test_a_quote_in_another_language_is_shown_translated_and_cites_the_original(corpus):
    assistant, gen = quoting_assistant(corpus, ["Maybe soon, the team hopes.", TRANSLATED])
    streamed = list(assistant.stream("When will the Brave1 France-Ukraine initiative be operational?"))
    answer = streamed[-1]
    assert len(gen.calls) == 2 and "Translate into English" in gen.calls[1][-1]["content"]
    assert "Elle sera opérationnelle" in gen.calls[1][-1]["content"]
    assert answer.outcome == "quote" and answer.text == f"{quote_lead('en', translated=True)} « {TRANSLATED} » [1]"
    # The streamed model answer is replaced in place by the translated quote, cited to the French passage.
    assert isinstance(streamed[-2], Replace) and streamed[-2] == answer.text
    cited = answer.citations[0]
    assert cited.source == "gamma.txt" and "Elle sera opérationnelle dès mars 2026." in cited.text


def test_a_quote_in_the_questions_language_is_not_translated(corpus):
    assistant, gen = quoting_assistant(corpus, ["Je ne sais pas vraiment, peut-être bientôt.", TRANSLATED])
    answer = assistant.ask("Quand l'initiative Brave1 France-Ukraine sera-t-elle opérationnelle ?")
    assert len(gen.calls) == 1 and answer.outcome == "quote"
    assert answer.text.startswith(quote_lead("fr")) and "Elle sera opérationnelle dès mars 2026." in answer.text


@pytest.mark.parametrize("reply", [
    "",  # nothing
    "The Brave1 France-Ukraine initiative speeds up joint projects. It will be operational from March.",  # the year dropped
    BRAVE,  # the original echoed: not in the question's language
    TRANSLATED + " " + "This is a long explanation of what the initiative does and why it matters. " * 4,  # an answer
])
def test_an_unusable_translation_falls_back_to_the_original_quote(corpus, reply):
    assistant, gen = quoting_assistant(corpus, ["Maybe soon, the team hopes.", reply])
    answer = assistant.ask("When will the Brave1 France-Ukraine initiative be operational?")
    assert len(gen.calls) == 2 and answer.outcome == "quote"
    assert answer.text.startswith(quote_lead("en") + " «") and "Elle sera opérationnelle dès mars 2026." in answer.text
    assert answer.citations[0].source == "gamma.txt"


def test_a_translation_keeps_numbers_paths_options_and_acronyms():
    original = "Mit apt install --no-install-recommends libc6 2.36 wird /etc/apt/sources.list von GNOME gelesen."
    assert kept_tokens(original) == {"--no-install-recommends", "libc6", "2.36", "/etc/apt/sources.list", "GNOME"}
    good = "With apt install --no-install-recommends libc6 2.36, GNOME reads /etc/apt/sources.list."
    assert usable_translation(original, good, "en")
    assert not usable_translation(original, good.replace("--no-install-recommends", "no recommends"), "en")


def test_a_translation_states_the_same_numbers_scales_and_dates_in_any_words():
    original = "La France a annoncé en mars une aide de deux milliards d'euros pour l'Ukraine."
    assert usable_translation(original, "In March France announced two billion euros of aid for Ukraine.", "en")
    # The small model's mistranslations a user would believe: another scale, a dropped month.
    assert not usable_translation(original, "In March France announced two million euros of aid for Ukraine.", "en")
    assert not usable_translation(original, "France announced two billion euros of aid for Ukraine.", "en")


def test_a_translation_keeps_the_code_a_word_against_a_bracket_writes():
    original = "issubclass(bool, int) is True since bool is a subclass of int; see also ls(1)."
    assert usable_translation(original, "issubclass(bool, int) es True porque bool es una subclase de int; véase ls(1).", "es")
    # The call translated into words is a different statement a user would believe.
    assert not usable_translation(original, "La subclase bool es verdadera porque bool es una subclase de int; véase ls(1).", "es")


def test_a_translation_half_commands_is_read_in_the_language_it_was_asked_in():
    # A German PDF's table row translated into English for an English question (seen as a user): fastText
    # is unsure of so many commands (English 0.28, its likeliest label), and the stop-word vote read Italian.
    original = ("Alle Timer-Units im Arbeitsspeicher auflisten ”systemctl list-timers” ”$unit” starten "
                "”systemctl start $unit” ”$unit” stoppen ”systemctl stop $unit”")
    translation = ("List all timer units in memory ”systemctl list-timers” ”$unit” start ”systemctl start $unit” "
                   "”$unit” stop ”systemctl stop $unit”")
    assert usable_translation(original, translation, "en")
    assert not usable_translation(original, original, "en")  # an echo is still no translation
    assert not usable_translation(translation, translation, "de")



def test_an_echo_the_detector_reads_as_the_asked_language_is_still_no_translation():
    # Commands with one German word: the vote reads German, fastText's likeliest label is English; the
    # same text given back as its "translation" must not be shown as one.
    text = "systemctl start nginx.service und systemctl enable nginx.service"
    assert not usable_translation(text, text, "en")
