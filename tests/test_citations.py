import pytest

from rag.answer.citations import StreamCleaner, clean_markers, is_refusal, resolve
from rag.answer.evidence import cite
from rag.retrieval.ranking import sentences_of
from rag.schema import Chunk, Hit


def passages():
    return [
        Hit(Chunk("a.txt#0", "a.txt", 0, 60, "Catherine Vautrin est la ministre des Armées en visite à Kiev."), 1.0, 1),
        Hit(Chunk("b.txt#3", "b.txt", 120, 190, "La production nationale d'armes a triplé en 2023 selon le ministère."), 0.5, 2),
    ]


def test_clean_markers_keeps_valid_numbers_and_drops_dangling_ones():
    assert clean_markers("Vrai [1]. Faux [7]. Mixte [2, 9].", 2) == "Vrai [1]. Faux. Mixte [2]."
    assert clean_markers("Voir [Document 2] et [doc 1; 2].", 2) == "Voir [2] et [1][2]."


@pytest.mark.parametrize("text", [
    "Run tar -cvJf archive.tar.xz ./source [1].",
    "Use find . -print0 | xargs -0 ls, or cd .. first [2].",
    "Remarque : la commande est « git add . » [1] !",
    "```python\ndef f():\n    return  1\n```",
])
def test_clean_markers_leaves_the_models_own_spaces_alone(text):
    # Spaces before punctuation belong to commands and to French typography; only a marker's go.
    assert clean_markers(text, 2) == text
    assert clean_markers(text.replace(" [1]", " [9]"), 2) == text.replace(" [1]", "")


@pytest.mark.parametrize("step", [1, 3])
def test_stream_keeps_a_commands_spaces(step):
    raw = "Run tar -cvJf a.tar.xz ./source [7] . Then find . -print0 [1] ."
    cleaner = StreamCleaner(2)
    text = "".join(cleaner.feed(raw[i : i + step]) for i in range(0, len(raw), step)) + cleaner.flush()
    assert text == clean_markers(raw, 2) == "Run tar -cvJf a.tar.xz ./source. Then find . -print0 [1]."


def test_resolve_points_at_file_and_span_of_each_cited_passage():
    cites = resolve("A [2]. B [1][2]. C [5].", passages())
    assert [(c.n, c.source, c.start, c.end) for c in cites] == [(2, "b.txt", 120, 190), (1, "a.txt", 0, 60)]
    assert cites[0].text.startswith("La production")


@pytest.mark.parametrize("step", [1, 2, 3, 7])
def test_stream_never_shows_a_dangling_marker_even_partially(step):
    raw = "La production a triplé [2]. Autre chose [12]. Fin [1]."
    cleaner = StreamCleaner(2)
    shown = []
    for i in range(0, len(raw), step):
        out = cleaner.feed(raw[i : i + step])
        shown.append(out)
        so_far = "".join(shown)
        assert "[12" not in so_far
        assert so_far.count("[") == so_far.count("]"), "a half-open marker was shown"
    shown.append(cleaner.flush())
    text = "".join(shown)
    assert "[12" not in text
    assert text == clean_markers(raw, 2)


def test_stream_holds_back_the_refusal_sentinel():
    cleaner = StreamCleaner(2)
    out = "".join(cleaner.feed(p) for p in ["NOT", " FO", "UND"]) + cleaner.flush()
    assert out == "" and not cleaner.started


@pytest.mark.parametrize("text", [
    "NOT FOUND",
    "not found.",
    "The documents do not contain this information.",
    "Les documents ne mentionnent pas cette date.",
    "Aucune information sur ce sujet dans les documents.",
])
def test_refusals_are_recognised(text):
    assert is_refusal(text)


@pytest.mark.parametrize("text", [
    "Catherine Vautrin est la ministre des Armées [1].",
    "The production tripled in 2023 [2].",
])
def test_grounded_answers_are_not_refusals(text):
    assert not is_refusal(text)


def test_cite_cites_a_supported_sentence_and_leaves_unsupported_ones():
    text = "La production nationale d'armes a triplé en 2023. Les licornes volent au-dessus de Paris."
    hits = passages()
    out = cite(text, sentences_of(hits), hits, "fr")
    assert "triplé en 2023 [2]." in out
    assert "Paris." in out and "Paris [" not in out
