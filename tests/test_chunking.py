import re

import pytest

from rag.ingest.chunking import chunk_document, count_tokens, split_tokens
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


def test_a_table_kept_as_one_segment_is_cut_between_its_lines():
    # Every row starts in lower case, so the splitter keeps the table as one over-long segment: it is
    # cut where its lines end, not in the middle of a command.
    rows = "\n\n".join(f"dpkg --option-{i} nome_pacchetto\n\nelenca lo stato numero {i} di un pacchetto" for i in range(40))
    text = "Tabella 2.13. Operazioni avanzate\n\ncomando\n\nazione\n\n" + rows
    chunks = chunk_document(doc(text), 60, 15)
    starts = {m.start() for m in re.finditer(r"(?m)^\S", text)}
    rows = [c for c in chunks if c.start >= text.index("dpkg")]
    assert len(rows) > 5 and all(count_tokens(c.text) <= 60 for c in chunks)
    assert all(c.start in starts and (c.end == len(text) or text[c.end] == "\n") for c in rows)


def test_no_chunk_holds_only_what_the_one_before_holds():
    # Short segments before a long one: stepping back for the overlap must leave room for the next
    # segment, or the next chunk is the overlap alone (a caption cut off from its table's rows).
    text = ("Ecco un elenco di altre operazioni di gestione dei pacchetti. Tabella 2.13. Elenco delle operazioni.\n\n"
            + " ".join(["riga"] * 200))
    chunks = chunk_document(doc(text), 60, 15)
    for a, b in zip(chunks, chunks[1:]):
        assert b.end > a.end, f"{b.text!r} lies inside {a.text!r}"


def test_split_long_skips_blank_lines():
    from rag.ingest.chunking import split_long

    text = "ab cd\n" + " " * 500 + "\nef gh\n\nij kl"
    spans = split_long(text, 0, len(text), 3)
    assert [text[a:b] for a, b in spans] == ["ab cd", "ef gh", "ij kl"]


@pytest.mark.parametrize("text", [
    "東京都は日本の首都です。" * 40,  # characters of one to three tokens each
    "🎉👍🏽😀" * 60,  # characters of several tokens, and a sequence of two (a skin tone)
    ("Ünïcödé ñ é 東京 😀 abc " * 30).strip(),
])
def test_split_tokens_never_exceeds_the_budget_nor_cuts_a_character(text):
    for budget in (1, 2, 5, 16):
        spans = split_tokens(text, 0, len(text), budget)
        assert spans[0][0] == 0 and spans[-1][1] == len(text)
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # they tile the text, none empty
        for a, b in spans:
            assert b > a
            # Only a single character that is itself more tokens than the budget may exceed it.
            assert count_tokens(text[a:b]) <= budget or b - a == 1
