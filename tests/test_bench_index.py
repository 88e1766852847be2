"""`rag bench --index-docs` and `--embed`: the measurements run end to end on a small folder (the fake
embedder for the index build; the numbers themselves are for docs/performance.md, never asserted)."""

from click.testing import CliRunner

from rag.apps.cli import main
from rag.measure.bench.embedding import sample_chunks
from rag.retrieval.embedders import FakeEmbedder


def test_bench_index_reports_every_stage(settings, tmp_path):
    for i in range(12):
        (settings.docs_dir / f"doc{i}.md").write_text(f"# Titre {i}\n\n" + "Une phrase sur le sujet. " * 80, encoding="utf-8")
    env = {"RAG_CACHE_DIR": str(settings.cache_dir), "RAG_EMBEDDER": FakeEmbedder.name}
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["bench", "--index-docs", str(settings.docs_dir), "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    import json

    r = json.loads((out / "index.json").read_text())["index"]
    assert r["files"] == 12 and r["chunks"] > 12 and r["unchanged_again_embedded"] == 0
    assert set(r["stages_s"]) == {"list", "read", "parse", "chunk", "embed", "write"}
    assert r["embed_chunks_per_s_in_build"] and r["embed_chunks_per_s_alone"] and r["peak_rss_mb"] > 0
    assert "| files | chunks |" in (out / "index.md").read_text()


def test_the_embed_sample_is_reproducible(settings):
    for i in range(5):
        (settings.docs_dir / f"d{i}.txt").write_text(" ".join(f"Phrase {i} {j}." for j in range(300)), encoding="utf-8")
    a = sample_chunks(settings.docs_dir, 8)
    assert a == sample_chunks(settings.docs_dir, 8) and len(set(a)) == 8
    assert sample_chunks(settings.docs_dir, 8, seed=1) != a
