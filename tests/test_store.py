import json

import numpy as np
import pytest

from rag.errors import IndexCorruptError, IndexIncompatibleError, IndexMissingError
from rag.ingest.indexing import build_index
from rag.ingest.store import CURRENT, live_generation, load_index
from rag.retrieval.embedders import FakeEmbedder


def test_round_trip_keeps_chunks_vectors_and_manifest(corpus):
    data = load_index(corpus.index_dir, FakeEmbedder.name)
    m = data.manifest
    assert m.embedder == FakeEmbedder.name and m.dim == 256 and m.format_version == 1
    assert set(m.files) == {"alpha.txt", "beta.md"}
    assert all(len(f["sha256"]) == 64 for f in m.files.values())
    assert m.chunk_tokens == corpus.chunk_tokens and m.language == "fr"
    assert len(data.chunks) == data.vectors.shape[0] == m.n_chunks
    again = FakeEmbedder().embed([data.chunks[0].text])
    assert np.allclose(data.vectors[0], again[0], atol=1e-6)


def test_incremental_update_embeds_only_changed_files(corpus):
    emb = FakeEmbedder()
    stats = build_index(corpus, emb)
    assert stats.embedded_chunks == 0 and stats.unchanged == 2 and emb.calls == []

    (corpus.docs_dir / "alpha.txt").write_text("Texte entièrement nouveau sur les missiles Mistral.", encoding="utf-8")
    (corpus.docs_dir / "gamma.txt").write_text("Un troisième document sur Brave1.", encoding="utf-8")
    (corpus.docs_dir / "beta.md").unlink()
    emb = FakeEmbedder()
    stats = build_index(corpus, emb)
    assert stats.changed == ["alpha.txt"] and stats.added == ["gamma.txt"] and stats.removed == ["beta.md"]
    embedded = [t for call in emb.calls for t in call]
    assert all("Umerov" not in t for t in embedded)
    data = load_index(corpus.index_dir, FakeEmbedder.name)
    assert {c.source for c in data.chunks} == {"alpha.txt", "gamma.txt"}
    assert any("Mistral" in c.text for c in data.chunks)


def test_changed_chunk_settings_force_full_reembedding(corpus):
    emb = FakeEmbedder()
    stats = build_index(corpus.replace(chunk_tokens=40, chunk_overlap=5), emb)
    assert stats.embedded_chunks == stats.chunks > 0


def test_missing_index_says_run_rag_index(tmp_path):
    with pytest.raises(IndexMissingError, match="rag index"):
        load_index(tmp_path / "none")


def test_other_embedder_is_refused(corpus):
    with pytest.raises(IndexIncompatibleError, match="rebuild"):
        load_index(corpus.index_dir, "all-MiniLM-L6-v2")


def test_other_format_version_is_refused(corpus):
    gen = live_generation(corpus.index_dir)
    raw = json.loads((gen / "manifest.json").read_text())
    raw["format_version"] = 99
    (gen / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(IndexIncompatibleError, match="format version 99"):
        load_index(corpus.index_dir)


@pytest.mark.parametrize("victim", ["chunks.jsonl", "vectors.faiss", "manifest.json"])
def test_truncated_files_are_reported_as_corrupt(corpus, victim):
    gen = live_generation(corpus.index_dir)
    path = gen / victim
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])
    with pytest.raises(IndexCorruptError, match="rag index --rebuild"):
        load_index(corpus.index_dir, FakeEmbedder.name)
    # A corrupt index is replaced by the next build, not an obstacle to it.
    build_index(corpus, FakeEmbedder())
    assert load_index(corpus.index_dir, FakeEmbedder.name).manifest.n_chunks > 0


def test_leftovers_of_an_interrupted_build_do_not_matter(corpus):
    live = live_generation(corpus.index_dir)
    half = corpus.index_dir / ".gen-123.tmp"
    half.mkdir()
    (half / "chunks.jsonl").write_text("{broken")
    assert load_index(corpus.index_dir, FakeEmbedder.name).path == live
    build_index(corpus.replace(chunk_tokens=50, chunk_overlap=5), FakeEmbedder())
    assert not half.exists() and not live.exists()
    assert (corpus.index_dir / CURRENT).read_text().strip() == live_generation(corpus.index_dir).name


def test_large_index_is_an_hnsw_graph_that_finds_what_exact_search_finds(settings, monkeypatch):
    """Past HNSW_MIN_CHUNKS the index is approximate; on clustered vectors it must return the exact
    neighbours nearly always, and keep them (and its search setting) across save and load."""
    import faiss

    from rag.ingest import store
    from rag.retrieval.search import Retriever

    monkeypatch.setattr(store, "HNSW_MIN_CHUNKS", 500)
    rng = np.random.default_rng(0)
    docs = settings.docs_dir
    docs.mkdir(parents=True, exist_ok=True)
    words = [f"mot{i}" for i in range(400)]
    for n in range(60):
        (docs / f"d{n:02d}.txt").write_text("\n\n".join(" ".join(rng.choice(words, 30)) + "." for _ in range(25)), encoding="utf-8")
    stats = build_index(settings, FakeEmbedder(dim=64))
    data = load_index(settings.index_dir, FakeEmbedder.name)
    assert stats.chunks >= 500 and data.manifest.faiss_index == "hnsw32"
    assert isinstance(data.faiss, faiss.IndexHNSW) and data.faiss.hnsw.efSearch == store.HNSW_EF_SEARCH
    exact = store.build_faiss(data.vectors, "flat-ip")
    queries = data.vectors[::25] + rng.normal(0, 0.05, (len(data.vectors[::25]), 64)).astype(np.float32)
    got, want = data.faiss.search(queries, 10)[1], exact.search(queries, 10)[1]
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want)])
    assert recall >= 0.95, recall
    hits = Retriever(settings.index_dir, FakeEmbedder(dim=64)).search(data.chunks[7].text, 4)
    assert hits[0].chunk == data.chunks[7]


def test_small_index_stays_exact(corpus):
    data = load_index(corpus.index_dir, FakeEmbedder.name)
    assert data.manifest.faiss_index == "flat-ip" and type(data.faiss).__name__ == "IndexFlatIP"
