"""The answer kind is read by the bundled multilingual embedder from how a question asks, in languages
that have no example of their own: the examples are English only."""

import pytest

from rag.answer.question_kind import asked_kind, asking_phrase


def test_the_asking_phrase_is_the_opening_function_words_and_the_group_after_them():
    assert asking_phrase("Which two American companies will build it?") == "Which two American companies"
    assert asking_phrase("Wie viele Pakete sind installiert?") == "Wie viele Pakete"
    assert asking_phrase("¿Qué paquete hay que instalar?") == "Qué paquete"


@pytest.mark.parametrize("question, kind", [
    ("Wie viele Pakete sind installiert?", "number"),
    ("¿Cuántos días dura la prueba?", "number"),
    ("Quanti pacchetti ci sono nel sistema?", "number"),
    ("Сколько пакетов установлено?", "number"),
    ("Wer hat das Programm geschrieben?", "name"),
    ("¿Quién escribió el manual?", "name"),
    ("Кто написал эту книгу?", "name"),
    ("Welche Firma hat das Gerät hergestellt?", "name"),
    ("Wann wurde die Version veröffentlicht?", "date"),
    ("¿En qué año se publicó?", "date"),
    ("Quando è stato pubblicato?", "date"),
    ("¿Cuánto cuesta la licencia?", "money"),
    ("Wie viel kostet die Lizenz?", "money"),
])
def test_kinds_are_read_in_languages_without_examples(question, kind):
    assert asked_kind(question) == kind


@pytest.mark.parametrize("question", [
    "Welches Paket muss man installieren?",  # a package is a thing, not a name, count or date
    "¿Qué paquete hay que instalar?",
    "Quel paquet faut-il installer ?",
    "Which version added the option?",
    "Warum startet der Dienst nicht?",
    "¿Cómo se configura la red?",
])
def test_questions_about_things_ways_and_reasons_constrain_nothing(question):
    assert asked_kind(question) is None
