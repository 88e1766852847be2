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
    # Versions and ports are numbers in documentation ("3.6", "5900"): an answer without one answers nothing.
    ("Seit welcher Version gibt es das?", "number"),
    ("¿Qué puerto usa el servidor?", "number"),
])
def test_kinds_are_read_in_languages_without_examples(question, kind):
    assert asked_kind(question) == kind


@pytest.mark.parametrize("question", [
    "Welches Paket muss man installieren?",  # a package is a thing, not a name, count or date
    "¿Qué paquete hay que instalar?",
    "Quel paquet faut-il installer ?",
    "Warum startet der Dienst nicht?",
    "¿Cómo se configura la red?",
])
def test_questions_about_things_ways_and_reasons_constrain_nothing(question):
    assert asked_kind(question) is None


def test_the_examples_vectors_are_cached_and_a_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    import numpy as np

    from rag.answer import question_kind

    monkeypatch.setattr(question_kind, "_state", None)
    question_kind.warm(tmp_path)  # embeds the examples and writes them
    files = list((tmp_path / "question-kinds").glob("*.npy"))
    assert len(files) == 1
    embedded = question_kind._state[2]
    assert np.array_equal(np.load(files[0]), embedded)

    files[0].write_bytes(b"not an array")  # a damaged file is embedded again and replaced
    monkeypatch.setattr(question_kind, "_state", None)
    question_kind.warm(tmp_path)
    assert np.allclose(question_kind._state[2], embedded) and np.allclose(np.load(files[0]), embedded)

    monkeypatch.setattr(question_kind, "_state", None)  # read back from the cache: the same kinds
    assert question_kind._model(tmp_path)[2].shape == embedded.shape
    assert question_kind.asked_kind.__wrapped__("Wie viele Pakete sind installiert?") == "number"
