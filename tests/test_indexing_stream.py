"""`rag index` on big folders: files parsed in a background thread while the embedder runs, an
interrupted run resumed without embedding its finished files again, an unchanged folder checked by
size and modification time without reading it, and the result identical to a build in one go."""

import os
import time

import numpy as np
import pytest

from rag.ingest import indexing
from rag.ingest.indexing import build_index
from rag.ingest.store import live_generation, load_index
from rag.ingest.workspace import WIP
from rag.retrieval.embedders import FakeEmbedder


def write_folder(docs, n: int, words: int = 60) -> None:
    for i in range(n):
        sub = docs / f"part{i % 7}"
        sub.mkdir(exist_ok=True)
        body = " ".join(f"mot{i}x{j} suite." for j in range(words))
        (sub / f"f{i:04d}.txt").write_text(f"Document {i}.\n\n{body}", encoding="utf-8")


class Interrupting(FakeEmbedder):
    """The fake embedder, stopped by Ctrl-C after `calls` calls."""

    def __init__(self, calls: int):
        super().__init__()
        self.left = calls

    def embed(self, texts, **kw):
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return super().embed(texts, **kw)


def embedded(emb: FakeEmbedder) -> int:
    return sum(len(c) for c in emb.calls)


def snapshot(settings):
    data = load_index(settings.index_dir, FakeEmbedder.name)
    return [(c.id, c.text) for c in data.chunks], data.vectors


def test_an_interrupted_build_resumes_without_embedding_finished_files_again(settings, monkeypatch):
    monkeypatch.setattr(indexing, "EMBED_BATCH", 8)
    write_folder(settings.docs_dir, 40)
    with pytest.raises(KeyboardInterrupt):
        build_index(settings, Interrupting(calls=3))
    assert live_generation(settings.index_dir) is None, "nothing is published by an interrupted run"
    assert (settings.index_dir / WIP / "files.jsonl").read_text().count("\n") > 0
    emb = FakeEmbedder()
    stats = build_index(settings, emb)
    assert stats.files == 40 and len(stats.added) == 40
    one_go = settings.replace(index_dir=settings.index_dir.parent / "one-go")
    full = FakeEmbedder()
    build_index(one_go, full)
    assert 0 < embedded(emb) < embedded(full), "the finished files were not embedded again"
    assert stats.embedded_chunks == embedded(emb)
    (ids, vecs), (ids2, vecs2) = snapshot(settings), snapshot(one_go)
    assert ids == ids2 and np.array_equal(vecs, vecs2), "a resumed build is the build in one go"
    assert not (settings.index_dir / WIP).exists(), "the work in progress is removed once published"


def test_a_crash_in_the_middle_of_a_file_leaves_no_half_file(settings, monkeypatch):
    monkeypatch.setattr(indexing, "EMBED_BATCH", 8)
    write_folder(settings.docs_dir, 12)
    with pytest.raises(KeyboardInterrupt):
        build_index(settings, Interrupting(calls=2))
    wip = settings.index_dir / WIP
    # Rows written after the last record (a crash between the two) are cut off by the next run.
    with open(wip / "vectors.f32", "ab") as f:
        f.write(b"\x00" * 1000)
    with open(wip / "files.jsonl", "a") as f:
        f.write('{"rel": "part0/f0000.txt", "cut')
    build_index(settings, FakeEmbedder())
    one_go = settings.replace(index_dir=settings.index_dir.parent / "one-go")
    build_index(one_go, FakeEmbedder())
    assert snapshot(settings)[0] == snapshot(one_go)[0]


def test_other_settings_discard_the_work_in_progress(settings, monkeypatch):
    monkeypatch.setattr(indexing, "EMBED_BATCH", 8)
    write_folder(settings.docs_dir, 10)
    with pytest.raises(KeyboardInterrupt):
        build_index(settings, Interrupting(calls=1))
    emb = FakeEmbedder()
    stats = build_index(settings.replace(chunk_tokens=50, chunk_overlap=5), emb)
    assert stats.embedded_chunks == stats.chunks, "vectors made for other chunks are not reused"


def test_an_unchanged_folder_is_not_read_nor_rewritten(settings, monkeypatch):
    write_folder(settings.docs_dir, 300, words=5)
    build_index(settings, FakeEmbedder())
    gen = live_generation(settings.index_dir)
    read = []
    real = indexing.parse_file
    monkeypatch.setattr(indexing, "parse_file", lambda p, *a: read.append(p.rel) or real(p, *a))
    emb = FakeEmbedder()
    t0 = time.perf_counter()
    stats = build_index(settings, emb)
    assert time.perf_counter() - t0 < 2.0
    assert read == [] and emb.calls == [] and stats.unchanged == 300 and stats.files == 300
    assert live_generation(settings.index_dir) == gen, "no new generation for an unchanged folder"
    # A touched file is read (its bytes hashed) but not embedded again; an edited one is.
    victim = settings.docs_dir / "part3" / "f0003.txt"
    os.utime(victim, ns=(time.time_ns(), time.time_ns()))
    stats = build_index(settings, emb)
    assert read == ["part3/f0003.txt"] and emb.calls == [] and stats.unchanged == 300
    victim.write_text("Autre texte, tout neuf.", encoding="utf-8")
    stats = build_index(settings, emb)
    assert stats.changed == ["part3/f0003.txt"] and embedded(emb) == 1
    stats = build_index(settings, emb)
    assert read.count("part3/f0003.txt") == 2, "recorded with its new stamp: not read a third time"


def test_an_error_in_the_parsing_thread_is_raised_and_nothing_is_published(corpus, monkeypatch):
    gen = live_generation(corpus.index_dir)
    (corpus.docs_dir / "new.txt").write_text("Nouveau document.", encoding="utf-8")

    def broken(*a):
        raise MemoryError("parser")

    monkeypatch.setattr(indexing, "parse_file", broken)
    with pytest.raises(MemoryError):
        build_index(corpus, FakeEmbedder())
    assert live_generation(corpus.index_dir) == gen


def test_parsing_runs_while_the_embedder_works(settings, monkeypatch):
    """The parser thread is ahead of the embedder: when the first batch is embedded, files beyond it
    have already been parsed."""
    monkeypatch.setattr(indexing, "EMBED_BATCH", 4)
    write_folder(settings.docs_dir, 30, words=5)
    parsed, seen_at_embed = [], []
    real = indexing.parse_file
    monkeypatch.setattr(indexing, "parse_file", lambda p, *a: parsed.append(p.rel) or real(p, *a))

    class Slow(FakeEmbedder):
        def embed(self, texts, **kw):
            time.sleep(0.05)
            seen_at_embed.append(len(parsed))
            return super().embed(texts, **kw)

    build_index(settings, Slow())
    assert seen_at_embed[0] > 4 + 1, seen_at_embed


def test_watch_indexes_again_when_a_file_changes(corpus):
    import threading

    from rag.ingest.watch import watch

    builds, stop = [], threading.Event()
    thread = threading.Thread(target=watch, args=(corpus, FakeEmbedder(), builds.append, stop), kwargs={"interval": 0.05})
    thread.start()
    try:
        deadline = time.time() + 20
        while not builds and time.time() < deadline:
            time.sleep(0.02)
        assert builds and builds[0].unchanged == 2 and builds[0].embedded_chunks == 0
        (corpus.docs_dir / "gamma.txt").write_text("Un troisième document sur les drones.", encoding="utf-8")
        while len(builds) < 2 and time.time() < deadline:
            time.sleep(0.02)
        assert len(builds) == 2 and builds[1].added == ["gamma.txt"]
        time.sleep(0.3)
        assert len(builds) == 2, "no build while nothing changes"
        for f in corpus.docs_dir.iterdir():
            f.unlink()
        # the files go one by one, so a poll may catch the folder half emptied and build once more
        # before the empty folder's failed build; wait for that one
        while not any("no indexable text" in str(b) for b in builds[2:]) and time.time() < deadline:
            time.sleep(0.02)
        assert any("no indexable text" in str(b) for b in builds[2:]), "a failed build is reported and the watch goes on"
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert load_index(corpus.index_dir, FakeEmbedder.name).manifest.n_chunks >= 3, "the last good index stays live"


def test_cli_index_into_a_pipe_prints_the_summary_alone(settings):
    from click.testing import CliRunner

    from rag.apps.cli import main

    write_folder(settings.docs_dir, 5, words=5)
    env = {"RAG_DOCS_DIR": str(settings.docs_dir), "RAG_INDEX_DIR": str(settings.index_dir),
           "RAG_CACHE_DIR": str(settings.cache_dir), "RAG_EMBEDDER": FakeEmbedder.name}
    result = CliRunner().invoke(main, ["index"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.strip().startswith("indexed 5 files") and result.output.count("\n") == 1, result.output
