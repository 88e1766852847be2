"""The large, memory-mapped index (rag.ingest.large), at a small size: LARGE_MIN_CHUNKS is lowered so
a folder of a few hundred chunks takes the path a million takes."""

import json

import numpy as np
import pytest

from rag.errors import IndexCorruptError
from rag.ingest import large, store
from rag.ingest.bm25 import LexicalIndex, word_tokenizer
from rag.ingest.indexing import build_index
from rag.ingest.store import live_generation, load_index
from rag.retrieval.embedders import FakeEmbedder
from rag.retrieval.search import Retriever
from rag.text.lexical import tokenize

WORDS = [f"mot{i}" for i in range(300)]


def write_docs(folder, rng, names, paragraphs=25):
    for name in names:
        (folder / name).write_text("\n\n".join(" ".join(rng.choice(WORDS, 30)) + "." for _ in range(paragraphs)), encoding="utf-8")


@pytest.fixture
def big(settings, monkeypatch):
    monkeypatch.setattr(large, "LARGE_MIN_CHUNKS", 200)
    rng = np.random.default_rng(0)
    write_docs(settings.docs_dir, rng, [f"d{n:02d}.txt" for n in range(40)])
    build_index(settings, FakeEmbedder(dim=64))
    return settings


def live_texts(index_dir):
    data = load_index(index_dir)
    deleted = set(data.lexical.deleted.tolist()) if data.layout else set()
    return sorted((c.source, c.text) for i, c in enumerate(data.chunks) if i not in deleted)


def test_word_tokenizer_gives_tokenize_tokens():
    text = "L'armée qu'elle a vue, jusqu'aux 12 drones; l'Ukraine d'abord. The ministers' 3 reports, Geräte."
    for lang in ("fr", "en", "de"):
        tok = word_tokenizer(lang)
        assert tok(text) == tokenize(text, lang)
        assert tok(text + " " + text) == tokenize(text, lang) * 2


def test_large_index_opens_memory_mapped_and_finds_what_exact_search_finds(big):
    data = load_index(big.index_dir, FakeEmbedder.name)
    assert data.layout is not None and data.manifest.faiss_index.startswith("ivf") and data.manifest.faiss_index.endswith("-sq8")
    assert isinstance(data.chunks, large.LazyChunks) and isinstance(data.vectors, np.memmap)
    assert len(data.chunks) == data.manifest.n_chunks >= 200
    assert all("row" in f for f in data.manifest.files.values())
    exact = store.build_faiss(np.asarray(data.vectors), "flat-ip")
    rng = np.random.default_rng(1)
    queries = (np.asarray(data.vectors[::7]) + rng.normal(0, 0.05, (len(data.vectors[::7]), 64))).astype(np.float32)
    got, want = data.faiss.search(queries, 10)[1], exact.search(queries, 10)[1]
    assert np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want)]) >= 0.95
    hits = Retriever(big.index_dir, FakeEmbedder(dim=64)).search(data.chunks[7].text, 4)
    assert hits[0].chunk == data.chunks[7]
    assert data.chunks[-1] == data.chunks[len(data.chunks) - 1] and data.chunks[2:4] == [data.chunks[2], data.chunks[3]]


def test_a_few_files_change_in_place_and_match_a_rebuild(big, tmp_path):
    gen = live_generation(big.index_dir)
    rng = np.random.default_rng(2)
    (big.docs_dir / "d03.txt").unlink()
    write_docs(big.docs_dir, rng, ["d05.txt", "new.txt"], paragraphs=3)
    (big.docs_dir / "d05.txt").write_text("zorglub " * 20 + "\n\n" + (big.docs_dir / "d05.txt").read_text(), encoding="utf-8")
    emb = FakeEmbedder(dim=64)
    stats = build_index(big, emb)
    assert stats.removed == ["d03.txt"] and stats.changed == ["d05.txt"] and stats.added == ["new.txt"]
    new = live_generation(big.index_dir)
    assert new != gen and (new / "bm25-delta").is_dir() and (new / "deleted.npy").is_file()
    layout = json.loads((new / "layout.json").read_text())
    assert layout["base_rows"] < layout["rows"], "rows were appended, not rebuilt"
    assert sum(len(c) for c in emb.calls) == stats.embedded_chunks, "only the changed and new files were embedded"
    data = load_index(big.index_dir)
    assert data.faiss.ntotal == data.manifest.n_chunks == stats.chunks
    r = Retriever(big.index_dir, FakeEmbedder(dim=64))
    assert r.search("zorglub", 2)[0].chunk.source == "d05.txt"
    gone = [c.text for c in load_index(big.index_dir).chunks if c.source == "d03.txt"]
    assert gone and all(h.chunk.source != "d03.txt" for t in gone[:5] for h in r.search(t, 4))
    # The same folder indexed from scratch holds the same passages.
    rebuilt = big.replace(index_dir=tmp_path / "rebuilt")
    build_index(rebuilt, FakeEmbedder(dim=64))
    assert live_texts(big.index_dir) == live_texts(rebuilt.index_dir)


def test_many_changes_rebuild_without_embedding_again(big):
    for n in range(10):
        (big.docs_dir / f"d{n:02d}.txt").unlink()
    emb = FakeEmbedder(dim=64)
    stats = build_index(big, emb)
    assert stats.embedded_chunks == 0 and emb.calls == []
    layout = json.loads((live_generation(big.index_dir) / "layout.json").read_text())
    assert layout["base_rows"] == layout["rows"] == stats.chunks
    assert not (live_generation(big.index_dir) / "deleted.npy").exists()


def test_appended_rows_score_on_the_main_index_scale():
    """A passage in the BM25 delta scores about what the same passage scores in the main index."""
    rng = np.random.default_rng(3)
    texts = [" ".join(rng.choice(WORDS, 30)) for _ in range(400)]
    main = LexicalIndex.build(texts, "fr")
    delta = large.delta_lexical(main, [texts[5]] + [" ".join(rng.choice(WORDS, 30)) for _ in range(20)], "fr")
    seg = large.SegmentedLexical(main, delta, 400, np.zeros(0, np.int64))
    top = dict(seg.search(texts[5], 5))
    assert 5 in top and 400 in top
    assert 0.8 < top[400] / top[5] < 1.25, top
    gone = large.SegmentedLexical(main, delta, 400, np.array([5]))
    assert 5 not in dict(gone.search(texts[5], 5))


def test_a_truncated_large_file_is_reported_without_reading_it_whole(big, monkeypatch):
    monkeypatch.setattr(store, "OPEN_CRC_MAX_BYTES", 1024)
    gen = live_generation(big.index_dir)
    with open(gen / "vectors.npy", "r+b") as f:
        f.truncate(f.seek(0, 2) - 64)
    with pytest.raises(IndexCorruptError, match="rag index --rebuild"):
        load_index(big.index_dir)


def test_small_index_keeps_its_layout(corpus):
    data = load_index(corpus.index_dir, FakeEmbedder.name)
    assert data.layout is None and isinstance(data.chunks, list)
    assert not (live_generation(corpus.index_dir) / "layout.json").exists()
    assert all("row" not in f for f in data.manifest.files.values())

