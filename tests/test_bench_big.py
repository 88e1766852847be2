"""`rag bench --index-docs DIR` with --parse-only and with a bound (--max-chunks, --resume-check):
runs end to end on a tiny folder with the fake embedder and writes well-formed reports (the numbers
are for docs/performance.md, never asserted beyond what must hold)."""

from __future__ import annotations

import json

from click.testing import CliRunner
from documents import pdf_bytes, write

from rag.apps.cli import main
from rag.retrieval.embedders import FakeEmbedder


def folder(settings, files: int = 12, sentences: int = 120):
    for i in range(files):
        (settings.docs_dir / f"doc{i:02}.md").write_text(f"# Titre {i}\n\n" + "Une phrase sur le sujet. " * sentences, encoding="utf-8")
    write(settings.docs_dir, "manual.pdf", pdf_bytes([["Page one says hello."], ["Page two says more."], []]))
    write(settings.docs_dir, "zero.pdf", b"")
    return {"RAG_CACHE_DIR": str(settings.cache_dir), "RAG_EMBEDDER": FakeEmbedder.name}


def test_parse_only_counts_files_pages_and_memory(settings, tmp_path):
    env = folder(settings)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["bench", "--index-docs", str(settings.docs_dir), "--parse-only", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    r = json.loads((out / "bigindex.json").read_text())["parse"]
    assert r["files"] == 14 and r["skipped"] == 1 and r["pdf_pages_with_text"] == 2
    assert set(r["by_format"]) == {".md", ".pdf"} and r["by_format"][".md"]["files"] == 12
    assert r["chunks"] >= 13 and r["rss"]["peak_sampled_mb"] > 0 and r["peak_rss_mb"] > 0
    assert set(r["rss"]["at"]) == {"10%", "50%", "90%", "end"}
    md = (out / "bigindex.md").read_text()
    assert "| PDF pages/s |" in md and "| .pdf | 1 |" in md
    half = CliRunner().invoke(main, ["bench", "--index-docs", str(settings.docs_dir), "--parse-only", "--sample-mb", "0.01",
                                     "--out", str(out)], env=env)
    assert half.exit_code == 0, half.output
    assert 1 <= json.loads((out / "bigindex.json").read_text())["parse"]["files"] < 14


def test_interrupted_build_and_resume(settings, tmp_path):
    env = folder(settings, files=40, sentences=600)  # about 20 chunks a file: more than one batch of 256
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["bench", "--index-docs", str(settings.docs_dir), "--max-chunks", "100", "--resume-check",
                                       "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    r = json.loads((out / "bigindex.json").read_text())["build"]
    first, again = r["first"], r["resumed"]
    assert not first["finished"] and 100 <= first["chunks_embedded"] and first["files_committed"] < first["files_planned"]
    assert first["embed_chunks_per_s_alone"] and first["embed_chunks_per_s_in_build"]
    assert again["files_from_first_run"] >= 1 and again["chunks_embedded_again"] == 0 and again["new_files_committed"] >= 1
    assert again["their_rows_unchanged"] in (None, again["files_from_first_run"])
    assert set(first["stages_s"]) == {"list", "read", "parse", "chunk", "embed", "write"}
    assert "| first | no |" in (out / "bigindex.md").read_text() and "| resumed |" in (out / "bigindex.md").read_text()


def test_bad_combinations_say_the_fix(settings, tmp_path):
    env = folder(settings)
    result = CliRunner().invoke(main, ["bench", "--index-docs", str(settings.docs_dir), "--parse-only", "--stop-after", "5",
                                       "--out", str(tmp_path / "o")], env=env)
    assert result.exit_code == 1 and "pass one or the other" in result.stderr
