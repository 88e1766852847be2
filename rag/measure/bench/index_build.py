"""`rag bench --index-docs DIR`: `rag index` of a folder into a fresh index with the real embedder,
stage by stage -> OUT/index.json and OUT/index.md.

Reports the wall time, the time of each stage (listing, reading, parsing, chunking: in the parser
thread, overlapping the embedding; embedding and writing: in the main thread), files/s, chunks,
peak RSS of this process, the embedding rate inside the build against the embedder's own rate on
256 chunks of the same folder (parsing must never make the embedder wait), then the same folder
indexed again unchanged, and an unchanged folder of 1,000 small files indexed again.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import click

from rag.measure.bench.common import cpu_times, fmt, machine_info, measured, others_share, peak_rss_mb

OPTIONS = [
    click.option("--index-docs", type=click.Path(exists=True, file_okay=False, path_type=Path),
                 help="Time `rag index` of this folder, stage by stage, into a fresh index."),
]


def measure_index(settings, docs: Path, say) -> dict:
    from rag.ingest.indexing import IndexStats, build_index
    from rag.measure.bench.embedding import sample_chunks
    from rag.retrieval.embedders import FakeEmbedder
    from rag.retrieval.remote import embedder_for

    tmp = Path(tempfile.mkdtemp(prefix="rag-index-bench-"))
    try:
        embedder = embedder_for(settings)
        say("the embedder alone on 256 chunks of the folder")
        texts = sample_chunks(docs, 256, seed=1)
        embedder.embed(texts[:8])
        t0 = time.perf_counter()
        embedder.embed(texts)
        alone = len(texts) / (time.perf_counter() - t0)
        s = settings.replace(docs_dir=docs, index_dir=tmp / "index")
        stats = IndexStats()
        say(f"indexing {docs}")
        before = cpu_times()
        t0 = time.perf_counter()
        build_index(s, embedder, stats=stats)
        wall = time.perf_counter() - t0
        share = others_share(before, cpu_times())
        t0 = time.perf_counter()
        again = build_index(s, embedder)
        unchanged_s = time.perf_counter() - t0
        # An unchanged folder of 1,000 small files: the fake embedder builds it (re-indexing embeds nothing).
        many = tmp / "many"
        for i in range(1000):
            sub = many / f"d{i % 20}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"f{i}.txt").write_text(f"File {i}.\n\nSome text about item {i} and its properties.", encoding="utf-8")
        s2 = settings.replace(docs_dir=many, index_dir=tmp / "index-many")
        build_index(s2, FakeEmbedder())
        t0 = time.perf_counter()
        build_index(s2, FakeEmbedder())
        many_s = time.perf_counter() - t0
        in_build = stats.embedded_chunks / stats.stages["embed"] if stats.stages["embed"] else None
        return {"docs": str(docs), "files": stats.files, "skipped": len(stats.skipped), "chunks": stats.chunks,
                "wall_s": round(wall, 1), "files_per_s": round(stats.files / wall, 2),
                "stages_s": {k: round(v, 1) for k, v in stats.stages.items()},
                "embed_chunks_per_s_in_build": round(in_build, 2) if in_build else None,
                "embed_chunks_per_s_alone": round(alone, 2),
                "peak_rss_mb": peak_rss_mb(), "others_cpu": share,
                "unchanged_again_s": round(unchanged_s, 3), "unchanged_again_embedded": again.embedded_chunks,
                "unchanged_1000_files_s": round(many_s, 3)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def index_markdown(report: dict) -> str:
    r = report["index"]
    st = r["stages_s"]
    ratio = r["embed_chunks_per_s_in_build"] / r["embed_chunks_per_s_alone"] if r["embed_chunks_per_s_in_build"] else None
    return "\n".join([
        measured(report) + " "
        f"Other processes used {fmt(r['others_cpu'])} of the CPU during the build.  ", "",
        "| folder | files | chunks | wall (s) | files/s | list | read | parse | chunk | embed | write | "
        "embedding chunks/s in the build / alone | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {r['docs']} | {r['files']} | {r['chunks']} | {r['wall_s']} | {r['files_per_s']} | {st['list']} | {st['read']} | "
        f"{st['parse']} | {st['chunk']} | {st['embed']} | {st['write']} | {fmt(r['embed_chunks_per_s_in_build'], 1)} / "
        f"{fmt(r['embed_chunks_per_s_alone'], 1)} ({fmt(ratio)}) | {r['peak_rss_mb']} |", "",
        f"Read, parse and chunk run in the parser thread while the embedder works (their seconds overlap the embedding). "
        f"The same folder indexed again unchanged: {r['unchanged_again_s']} s ({r['unchanged_again_embedded']} chunks embedded); "
        f"an unchanged folder of 1,000 small files: {r['unchanged_1000_files_s']} s.",
    ]) + "\n"


def selected(options: dict) -> bool:
    return bool(options.get("index_docs"))


def run(job) -> tuple[str, dict, str]:
    from rag.options import settings_from

    settings = settings_from(job.ctx)
    report = {**job.header(), "index": measure_index(settings, job.options["index_docs"], job.say)}
    report["load_average_end"] = machine_info()["load_average"]
    return "index", report, index_markdown(report)
