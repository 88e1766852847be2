"""The one sentence splitter (rag.text.sentences): where documents and answers are cut, in several
languages, and that the streamed citations cut answers where cite() does."""

import random

import pytest

from rag.answer.evidence import StreamCiter, cite
from rag.retrieval.ranking import sentences_of
from rag.schema import Chunk, Hit
from rag.text.sentences import ANSWER_ENDS, period_continues, sentence_spans


def cut(text, ends=None):
    spans = sentence_spans(text) if ends is None else sentence_spans(text, ends)
    return [text[s:e] for s, e in spans]


@pytest.mark.parametrize("text, sentences", [
    # An initial ends nothing, in any script; a capital letter after a hyphen is no initial.
    ("Selon M. Fedorov, la coopération avance. Kiev souhaite des SAMP-T. Mme Vautrin était là.",
     ["Selon M. Fedorov, la coopération avance.", "Kiev souhaite des SAMP-T.", "Mme Vautrin était là."]),
    ("The Hobbit is by J. R. R. Tolkien. It came out in 1937.", ["The Hobbit is by J. R. R. Tolkien.", "It came out in 1937."]),
    ("Поэму написал А. С. Пушкин. Она вышла в 1833 году.", ["Поэму написал А. С. Пушкин.", "Она вышла в 1833 году."]),
    ("Το έγραψε ο Ν. Καζαντζάκης. Εκδόθηκε το 1946.", ["Το έγραψε ο Ν. Καζαντζάκης.", "Εκδόθηκε το 1946."]),
    # An abbreviation before a lower-case word ends nothing; before a capitalised one it ends the sentence.
    ("Installieren Sie z.B. die Pakete mc usw. mit apt. Danach starten Sie neu.",
     ["Installieren Sie z.B. die Pakete mc usw. mit apt.", "Danach starten Sie neu."]),
    ("Mire, p. ej. la tabla de errores, etc. Consulte el archivo.",
     ["Mire, p. ej. la tabla de errores, etc.", "Consulte el archivo."]),
    ("Use apt vs. apt-get (e.g. for scripts), i.e. the older one. Then update.",
     ["Use apt vs. apt-get (e.g. for scripts), i.e. the older one.", "Then update."]),
    ("Les livres, les disques, etc. sont rangés. Le reste suit.", ["Les livres, les disques, etc. sont rangés.", "Le reste suit."]),
    # A sentence ending on a short or long word before a capitalised one ends there, in each language.
    ("Das geht mit Perl. Der Weg ist kurz. Wer ihn geht, spart Zeit.",
     ["Das geht mit Perl.", "Der Weg ist kurz.", "Wer ihn geht, spart Zeit."]),
    ("Escrito en Java. Funciona en Unix. Sí.", ["Escrito en Java.", "Funciona en Unix.", "Sí."]),
    # Decimals, versions and a closing quote: no space after the stop, or the quote goes between.
    ('Version 2.5 is out. He said "yes." Then he left.', ["Version 2.5 is out.", 'He said "yes.', "Then he left."]),
    # ";" and ":" end a passage's clause; "…" and "!" and "?" a sentence.
    ("Il pleut; il vente: rentrez… Vraiment? Oui!", ["Il pleut;", "il vente:", "rentrez…", "Vraiment?", "Oui!"]),
    # A mark alone between quotes is code, not an end; a quotation that runs on in lower case ends nothing
    # (French spacing included), one followed by a capital ends its sentence.
    ("With nargs='?' one value is read. Use sep=\".\" then.", ["With nargs='?' one value is read.", 'Use sep="." then.']),
    ('He asked "why?" and left. Il a dit « quoi ? » puis rit. Il a dit « non ! » Puis rien.',
     ['He asked "why?" and left.', "Il a dit « quoi ? » puis rit.", "Il a dit « non !", "Puis rien."]),
    ("\"Is it 'yes'?\" Then no.", ["\"Is it 'yes'?", "Then no."]),
])
def test_passages_are_cut_at_sentences_in_every_language(text, sentences):
    assert cut(text) == sentences


def test_wrapped_lines_join_and_paragraphs_part():
    text = "« Nous passons à la production »\n, a déclaré M. Fedorov sur\nTelegram.\n\nNouvelle ligne\nSuite"
    assert cut(text) == ["« Nous passons à la production »\n, a déclaré M. Fedorov sur", "Telegram.", "Nouvelle ligne", "Suite"]
    assert cut("  \n\n  ") == [] and cut("") == [] and cut("sans fin") == ["sans fin"]


def test_answers_end_sentences_only_at_full_stops_and_question_and_exclamation_marks():
    answer = "Elle a signé deux textes : une lettre d'intention; un accord. M. Umerov l'a dit! Et après?"
    assert cut(answer, ANSWER_ENDS) == ["Elle a signé deux textes : une lettre d'intention; un accord.", "M. Umerov l'a dit!", "Et après?"]
    # The spans leave out the spaces between sentences, so cite() keeps them where they were.
    assert cut(answer) == ["Elle a signé deux textes :", "une lettre d'intention;", "un accord.", "M. Umerov l'a dit!", "Et après?"]


@pytest.mark.parametrize("text, end, expected", [
    ("M. Fedorov", 2, True), ("(J. Doe", 3, True), ("SAMP-T. Mme", 7, False), ("etc. and", 4, True),
    ("etc. And", 4, False), ("usw. «die", 4, True), ("sein. mount", 5, False), ("Perl. der", 5, False),
    ("e.g. the", 4, True), ("Jr. Smith", 3, False), ("fin!", 4, False), ("etc.", 4, False),
])
def test_a_full_stop_continues_after_an_initial_or_before_a_lower_case_word(text, end, expected):
    assert period_continues(text, end) is expected


TEXT = ("Selon M. Fedorov, la coopération porte sur les drones; elle commence en mars. "
        "Le ministère a publié un communiqué : « la production commune avance », etc. Kiev attend des SAMP-T.")


@pytest.mark.parametrize("answer", [
    "Selon M. Fedorov, elle porte sur les drones. Le ministère a publié un communiqué.",
    "La coopération porte sur les drones; elle commence en mars.\nLe ministère a publié un communiqué, etc. et Kiev attend.",
    'Le ministère dit : « la production commune avance. » Kiev attend des SAMP-T.  ',
    "  Elle commence en mars ! Le communiqué (etc.) suit.\n\n- des drones\n- des SAMP-T",
    "Selon M.\nFedorov, la coopération porte sur les drones",
    "Le ministère a dit « quoi ? » puis a publié un communiqué. Avec sep='.' la coopération porte sur les drones.",
])
def test_streamed_citations_are_cites_whatever_the_pieces(answer):
    hits = [Hit(Chunk("doc.txt#0", "doc.txt", 0, len(TEXT), TEXT), 1.0, 1)]
    context = sentences_of(hits)
    whole = cite(answer, context, hits, "fr")
    assert "[1]" in whole
    rng = random.Random(0)
    for pieces in ([answer], list(answer), None, None, None):
        if pieces is None:  # pieces of 1 to 6 characters, as tokens come
            cuts = sorted(rng.sample(range(1, len(answer)), k=len(answer) // 4))
            pieces = [answer[a:b] for a, b in zip([0, *cuts], [*cuts, len(answer)])]
        citer = StreamCiter(context, hits, "fr")
        assert "".join(citer.feed(p) for p in pieces) + citer.flush() == whole
