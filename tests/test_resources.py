"""Per-language resources come from libraries, chosen by the language code; any language works."""

from rag.answer import answer_types
from rag.text.lexical import content_words, stemmer, stopwords, tokenize
from rag.text.resources import snowball, stopword_languages, stopword_list


def test_stop_words_and_stemmers_cover_many_languages():
    assert len(stopword_languages()) >= 50
    # Swedish and Finnish are in no list this project wrote: stop words and stems come from the libraries.
    assert "och" in stopword_list("sv") and "ja" in stopword_list("fi")
    assert stemmer("sv").stemWord("husen") != "husen" and stemmer("fi").stemWord("taloissa") != "taloissa"
    assert content_words("Huset och bilen", "sv") == ["huset", "bilen"]


def test_a_language_without_resources_still_works_unstemmed():
    assert stopword_list("xx") == () and snowball("xx").stemWord("houses") == "houses"
    # Its words are matched as written, folded; stop words of English questions are still dropped.
    assert tokenize("Wáka the nui", "xx") == ["waka", "nui"]
    assert "the" in stopwords("xx")


def test_a_questions_stop_words_are_those_of_its_own_language():
    # The answer checks read a question with its own language's stop words, whatever the corpus's.
    assert {"das", "und", "wie"} <= answer_types._stops("Wie viele Pakete und Dienste hat das System?")
    assert {"el", "por"} <= answer_types._stops("¿Cuántos paquetes instala el sistema por defecto?")


def test_a_language_spec_of_two_drops_both_stop_words_and_stems_as_the_first():
    from rag.text.lexical import stemmer, stopwords, text_languages

    assert text_languages("en", "de") == "en+de" and text_languages("en", "en") == "en"
    assert stopwords("en") | stopwords("de") <= stopwords("en+de")
    assert "die" in stopwords("en+de") and "die" not in stopwords("en")
    assert stemmer("en+de").stemWord("running") == stemmer("en").stemWord("running") != stemmer("de").stemWord("running")


def test_the_documents_text_keeps_its_own_words_whatever_the_questions_language():
    """"man" is a German stop word and an English word: an English page read for a German question
    keeps it (the question side drops it)."""
    from rag.text.support import coverage, shared

    page = "Read the man page of bin/ls."
    assert shared({"man", "bin"}, page, "en+de") == 2
    assert coverage("Welche man page?", page, "en+de") == coverage("Which man page?", page, "en")
