"""The optional Milvus vector store (rag.ingest.milvus_store): the settings that choose it, the
manifest that records it, and (slow tier) the real embedded milvus-lite answering as FAISS does."""

import dataclasses
import json

import numpy as np
import pytest
from conftest import write_tiny_corpus

from rag.config import Settings
from rag.errors import ConfigError, IndexIncompatibleError
from rag.ingest import large
from rag.ingest.indexing import build_index
from rag.ingest.milvus_store import VectorStore, client
from rag.ingest.store import live_generation, load_index, read_manifest
from rag.retrieval.embedders import FakeEmbedder
from rag.retrieval.search import Retriever

QUERIES = ["ministre de la défense", "production de drones avec la France", "contrats occidentaux", "bombes Hammer"]


def test_store_settings_from_env_and_bad_values_say_the_fix():
    s = Settings.from_env({"RAG_VECTOR_STORE": "Milvus", "RAG_MILVUS_URI": "http://milvus:19530", "RAG_MILVUS_INDEX": "ivf_sq8"})
    assert VectorStore.from_settings(s) == VectorStore("milvus", "http://milvus:19530", "", "IVF_SQ8")
    assert VectorStore.from_settings(Settings()).kind == "faiss"
    lite = VectorStore.from_settings(Settings(vector_store="milvus", milvus_uri="runs/x.db"))
    assert lite.uri.startswith("/") and lite.uri.endswith("/runs/x.db")
    with pytest.raises(ConfigError, match="RAG_VECTOR_STORE='qdrant' is not one of faiss, milvus; fix or unset it"):
        VectorStore.from_settings(Settings(vector_store="qdrant"))
    with pytest.raises(ConfigError, match="RAG_MILVUS_INDEX='DISKANN' is not one of"):
        VectorStore.from_settings(Settings(milvus_index="DISKANN"))
    with pytest.raises(ConfigError, match="neither a milvus-lite path ending in .db nor an http:// URI"):
        client("/tmp/some-folder")


def test_default_lite_uri_is_in_the_index_folder(tmp_path):
    assert VectorStore("milvus").resolved_uri(tmp_path / "index") == str((tmp_path / "index" / "milvus.db").resolve())
    assert VectorStore("milvus", "http://h:19530").resolved_uri(tmp_path) == "http://h:19530"


def test_faiss_index_records_its_store_and_refuses_a_milvus_setting(corpus):
    manifest = read_manifest(live_generation(corpus.index_dir))
    assert (manifest.vector_store, manifest.vector_collection) == ("faiss", "")
    with pytest.raises(IndexIncompatibleError) as e:
        Retriever(corpus.index_dir, FakeEmbedder(), store=VectorStore("milvus")).search("drones", 2)
    assert "keeps its vectors in faiss, not milvus; set RAG_VECTOR_STORE=faiss or rebuild it with `rag index --rebuild`" in str(e.value)
    assert "\n" not in str(e.value)
    assert Retriever(corpus.index_dir, FakeEmbedder(), store=VectorStore("faiss")).search("drones", 2)


def top_sources(index_dir, store, query, k=3):
    return [(h.chunk.source, h.chunk.start) for h in Retriever(index_dir, FakeEmbedder(), store=store).search(query, k)]


# Slow: the real milvus-lite writes parquet segments and builds its index (seconds of CPU a build).
@pytest.mark.slow
def test_milvus_lite_index_answers_as_faiss_does(tmp_path):
    from conftest import make_settings

    (tmp_path / "f").mkdir()
    (tmp_path / "m").mkdir()
    faiss_settings = write_tiny_corpus(make_settings(tmp_path / "f"))
    milvus_settings = dataclasses.replace(make_settings(tmp_path / "m"), vector_store="milvus")
    for f in faiss_settings.docs_dir.iterdir():
        (milvus_settings.docs_dir / f.name).write_bytes(f.read_bytes())
    build_index(milvus_settings, FakeEmbedder())
    manifest = read_manifest(live_generation(milvus_settings.index_dir))
    assert manifest.vector_store == "milvus" and manifest.vector_collection and manifest.faiss_index == "milvus-hnsw"
    assert not (live_generation(milvus_settings.index_dir) / "vectors.faiss").exists()
    assert (milvus_settings.index_dir / "milvus.db").exists()
    milvus = VectorStore.from_settings(milvus_settings)
    for q in QUERIES:
        want = Retriever(faiss_settings.index_dir, FakeEmbedder()).search(q, 3)
        got = Retriever(milvus_settings.index_dir, FakeEmbedder(), store=milvus).search(q, 3)
        assert [(h.chunk.source, h.chunk.start) for h in got] == [(h.chunk.source, h.chunk.start) for h in want]
        assert [h.dense_score for h in got] == pytest.approx([h.dense_score for h in want], abs=1e-4)
    # The other way round: the Milvus index opened with the default store says how to open it.
    with pytest.raises(IndexIncompatibleError, match="keeps its vectors in milvus, not faiss; set RAG_VECTOR_STORE=milvus"):
        load_index(milvus_settings.index_dir, FakeEmbedder.name, VectorStore("faiss"))
    # A changed file: a new generation with a new collection, the old one dropped, nothing re-embedded
    # but the file.
    (milvus_settings.docs_dir / "gamma.txt").write_text("Les drones navals patrouillent en mer Noire.", encoding="utf-8")
    stats = build_index(milvus_settings, FakeEmbedder())
    assert stats.added == ["gamma.txt"] and stats.embedded_chunks == 1
    new = read_manifest(live_generation(milvus_settings.index_dir))
    assert new.vector_collection != manifest.vector_collection
    names = client(milvus.resolved_uri(milvus_settings.index_dir)).list_collections()
    assert new.vector_collection in names and manifest.vector_collection not in names
    assert top_sources(milvus_settings.index_dir, milvus, "drones navals mer Noire", 1) == [("gamma.txt", 0)]
    # Back to FAISS with nothing changed in the folder: rewritten, the collections dropped.
    back = dataclasses.replace(milvus_settings, vector_store="faiss")
    build_index(back, FakeEmbedder())
    assert read_manifest(live_generation(back.index_dir)).vector_store == "faiss"
    assert new.vector_collection not in client(milvus.resolved_uri(back.index_dir)).list_collections()


def write_random_folder(folder, files: int = 40, paragraphs: int = 25) -> None:
    """Files of random words, enough chunks for the large layout once LARGE_MIN_CHUNKS is lowered."""
    rng = np.random.default_rng(0)
    words = [f"mot{i}" for i in range(300)]
    for n in range(files):
        (folder / f"d{n:02d}.txt").write_text(
            "\n\n".join(" ".join(rng.choice(words, 30)) + "." for _ in range(paragraphs)), encoding="utf-8")


# Slow: as above, with the large layout (memory-mapped chunks and BM25) a million chunks take.
@pytest.mark.slow
def test_large_layout_with_milvus_matches_exact_search(settings, monkeypatch):
    monkeypatch.setattr(large, "LARGE_MIN_CHUNKS", 100)
    write_random_folder(settings.docs_dir)
    s = dataclasses.replace(settings, vector_store="milvus", milvus_index="FLAT")
    build_index(s, FakeEmbedder(dim=64))
    data = load_index(s.index_dir, FakeEmbedder.name, VectorStore.from_settings(s))
    assert data.layout is not None and data.manifest.faiss_index == "milvus-flat"
    assert json.loads((data.path / "layout.json").read_text())["rows"] == len(data.chunks) >= 100
    queries = np.asarray(data.vectors[::5], np.float32)
    exact = np.argsort(-(queries @ np.asarray(data.vectors).T), axis=1)[:, :5]
    got = data.faiss.search(queries, 5)[1]
    assert np.mean([len(set(g) & set(w)) / 5 for g, w in zip(got, exact)]) >= 0.99


# Slow: milvus-lite in two processes.
@pytest.mark.slow
def test_a_lite_folder_open_in_another_process_is_one_line_naming_the_fix(corpus):
    import subprocess
    import sys

    s = dataclasses.replace(corpus, vector_store="milvus")
    db = VectorStore.from_settings(s).resolved_uri(s.index_dir)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from rag.ingest.milvus_store import client; "
                               f"client({db!r}); print('open', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        from rag.errors import RemoteError

        with pytest.raises(RemoteError) as e:
            build_index(s, FakeEmbedder())
        assert "another process has it open" in str(e.value) and "RAG_MILVUS_URI=http://" in str(e.value)
    finally:
        holder.kill()
        holder.wait()


# Slow: `rag bench --scale-store milvus` end to end, on a small large-layout index: milvus-lite
# insertion, and two probe processes.
@pytest.mark.slow
def test_bench_scale_store_measures_milvus_beside_faiss(settings, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from rag.apps.cli import main

    monkeypatch.setattr(large, "LARGE_MIN_CHUNKS", 100)
    write_random_folder(settings.docs_dir)
    scale = tmp_path / "scale"
    build_index(dataclasses.replace(settings, index_dir=scale / "index"), FakeEmbedder())
    data = load_index(scale / "index")
    (scale / "corpus").mkdir()
    held = [data.chunks[i].text for i in range(0, 50, 10)]
    (scale / "corpus" / "queries.json").write_text(json.dumps({"texts": held, "vectors": FakeEmbedder().embed(held).tolist()}))
    (scale / "corpus" / "corpus.json").write_text(json.dumps({"chunks": len(data.chunks), "held_out": len(held), "embedder": FakeEmbedder.name}))
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": "a", "question": "mot1 mot2 mot3"}) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["bench", str(questions), "--scale-index", "1000", "--scale-dir", str(scale),
                                       "--scale-store", "milvus", "--scale-milvus-index", "FLAT", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "scale-store.json").read_text())["scale_store"]
    faiss_probe, milvus_probe = report["probes"]["faiss"], report["probes"]["milvus"]
    assert milvus_probe["faiss_index"] == "milvus-flat" and faiss_probe["faiss_index"].startswith("ivf")
    assert milvus_probe["recall_at_10"] == 1.0 and faiss_probe["recall_at_10"] >= 0.95
    assert milvus_probe["queries"] == faiss_probe["queries"] == 1 + len(held)
    assert report["build"]["insert_s"] >= 0 and "| dense recall@10" in (out / "scale-store.md").read_text()
    # A second run with the same store reuses the Milvus collection.
    again = CliRunner().invoke(main, ["bench", str(questions), "--scale-index", "1000", "--scale-dir", str(scale),
                                      "--scale-store", "milvus", "--scale-milvus-index", "FLAT", "--scale-held-out", "2", "--out", str(out)])
    assert again.exit_code == 0, again.output
    report = json.loads((out / "scale-store.json").read_text())["scale_store"]
    assert report["build"]["cached"] and report["probes"]["milvus"]["queries"] == 3
