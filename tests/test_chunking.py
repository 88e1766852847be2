import pytest

from rag.ingest.chunking import chunk_document, count_tokens
from rag.schema import Document
from rag.text.sentences import sentence_spans


def doc(text):
    return Document(path="d.txt", title="d", text=text)


def test_chunks_respect_token_budget_and_keep_exact_spans():
    text = " ".join(f"Phrase numéro {i} sur la défense ukrainienne et la France." for i in range(80))
    chunks = chunk_document(doc(text), 60, 15)
    assert len(chunks) > 5
    for c in chunks:
        assert c.text == text[c.start : c.end]
        assert count_tokens(c.text) <= 60
        assert c.source == "d.txt"


def test_chunks_overlap_and_cover_everything():
    text = " ".join(f"Sentence {i} is here." for i in range(100))
    chunks = chunk_document(doc(text), 50, 12)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    for a, b in zip(chunks, chunks[1:]):
        assert b.start < a.end, "consecutive chunks share an overlap"
        assert b.start > a.start, "chunking always advances"


def test_boundaries_are_sentences_when_possible():
    text = "First sentence here. Second sentence there! Third one? Fourth."
    chunks = chunk_document(doc(text), 8, 0)
    assert all(c.text.rstrip().endswith((".", "!", "?")) for c in chunks)


def test_a_sentence_longer_than_the_budget_is_split():
    text = "mot " * 500
    chunks = chunk_document(doc(text.strip()), 40, 5)
    assert len(chunks) >= 10
    assert all(count_tokens(c.text) <= 41 for c in chunks)


def test_segments_skip_blank_lines():
    spans = sentence_spans("A.\n\n\nB.")
    assert [("A.\n\n\nB."[s:e]) for s, e in spans] == ["A.", "B."]


def test_invalid_settings_rejected():
    with pytest.raises(ValueError):
        chunk_document(doc("x"), 10, 10)


def test_segments_keep_wrapped_sentences_and_abbreviations_whole():
    text = "« Nous passons à la production »\n, a déclaré M. Fedorov sur Telegram.\nKiev souhaite des SAMP-T. Mme Vautrin était là."
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "« Nous passons à la production »\n, a déclaré M. Fedorov sur Telegram.",
        "Kiev souhaite des SAMP-T.",
        "Mme Vautrin était là.",
    ]
