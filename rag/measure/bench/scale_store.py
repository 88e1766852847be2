"""`rag bench --scale-index N --scale-store milvus`: the index of `--scale-index N` (rag.measure.bench.scale)
with its dense search in Milvus instead of FAISS, measured beside FAISS -> OUT/scale-store.json, .md.

SCALE_DIR/index-milvus gets a generation of the product's Milvus layout (rag.ingest.milvus_store, what
`RAG_VECTOR_STORE=milvus rag index` writes): the FAISS index's chunks, vectors and BM25 files hard-linked,
no vectors.faiss, and the same vectors inserted into a collection at --scale-milvus-uri (default:
milvus-lite in that folder), timed. Cached like the FAISS index: a second run only measures. Then
rag.measure.bench.scale_probe runs on each index in a fresh process, one after the other: open time,
resident memory, dense search alone, hybrid search (query embedding + dense + BM25 + fusion) and
dense recall@10 against exact search, for the same questions and held-out chunks.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click
import numpy as np

from rag.errors import InputError
from rag.measure.bench.common import fmt, machine_info

OPTIONS = [
    click.option("--scale-store", type=click.Choice(["milvus"]),
                 help="With --scale-index: the same index with its vectors in Milvus, measured beside FAISS."),
    click.option("--scale-milvus-uri", default="", metavar="URI",
                 help="Milvus for --scale-store (default: milvus-lite in SCALE_DIR/index-milvus/milvus.db)."),
    click.option("--scale-milvus-index", default="HNSW", show_default=True, metavar="TYPE",
                 help="The collection's index type for --scale-store (rag.ingest.milvus_store.INDEXES)."),
    click.option("--scale-held-out", type=click.IntRange(0), metavar="N",
                 help="With --scale-store: only the first N held-out passages as queries, in both stores (default: all)."),
]


def selected(options: dict) -> bool:
    return bool(options.get("scale_store") and options.get("scale_index"))


def _link(src: Path, dst: Path) -> None:
    if src.is_dir():
        dst.mkdir()
        for p in src.iterdir():
            _link(p, dst / p.name)
    else:
        os.link(src, dst)


def build(faiss_dir: Path, milvus_dir: Path, store, say) -> dict:
    """The Milvus generation of the FAISS index's rows (those not deleted by earlier runs' updates);
    {"cached": True, ...} when it is there."""
    from rag.ingest.milvus_store import collection_prefix, drop_stale, release, write_collection
    from rag.ingest.store import live_generation, publish_generation, read_manifest

    saved = milvus_dir / "build.json"
    src = live_generation(faiss_dir)
    if live_generation(milvus_dir) is not None and saved.is_file():
        cached = json.loads(saved.read_text())
        # Built again for another store, or when the FAISS index has changed since (each --scale-index run updates it).
        if (cached.get("index"), cached.get("uri"), cached.get("source")) == (store.index, store.uri, src.name):
            return {**cached, "cached": True}
    manifest = read_manifest(src)
    timing = {}

    def write(tmp: Path):
        for p in src.iterdir():
            if p.name not in ("manifest.json", "vectors.faiss"):
                _link(p, tmp / p.name)
        rows = np.load(src / "vectors.npy", mmap_mode="r")
        deleted = np.load(src / "deleted.npy") if (src / "deleted.npy").is_file() else np.zeros(0, np.int64)
        name = collection_prefix(milvus_dir) + tmp.name.strip(".").removesuffix(".tmp").replace("-", "_")
        say(f"inserting {len(rows) - len(deleted):,} vectors into Milvus ({store.index}) at {store.resolved_uri(milvus_dir)}")
        t0 = time.perf_counter()
        kind = write_collection(store, milvus_dir, name, rows, skip=deleted)
        timing["insert_s"] = round(time.perf_counter() - t0, 1)
        return kind, {"vector_store": "milvus", "vector_collection": name, "vector_uri": store.uri}

    t0 = time.perf_counter()
    gen = publish_generation(milvus_dir, manifest, write)
    drop_stale(store, milvus_dir, keep=read_manifest(gen).vector_collection)
    publish_s = time.perf_counter() - t0
    # The probe's process opens it next. Closing milvus-lite waits for its background work (merging
    # segments and building their indexes after the inserts), so this is when the index is whole.
    release(store.resolved_uri(milvus_dir), store.token)
    out = {**timing, "publish_s": round(publish_s, 1), "ready_s": round(time.perf_counter() - t0, 1),
           "load_average": machine_info()["load_average"],
           "index": store.index, "uri": store.uri, "source": src.name}
    saved.write_text(json.dumps(out))
    return out


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 1e6


def run(job) -> tuple[str, dict, str]:
    from rag.config import Settings
    from rag.ingest.milvus_store import VectorStore
    from rag.ingest.store import live_generation
    from rag.measure.bench.scale import run_probe

    o = job.options
    folder = Path(o["scale_dir"])
    corpus, faiss_dir, milvus_dir = folder / "corpus", folder / "index", folder / "index-milvus"
    if live_generation(faiss_dir) is None or not (corpus / "corpus.json").is_file():
        raise InputError(f"no FAISS index in {faiss_dir} to compare with; run `rag bench --scale-index {o['scale_index']} "
                         f"--scale-dir {folder} --scale-anchors ...` first")
    info = json.loads((corpus / "corpus.json").read_text())
    store = VectorStore.from_settings(Settings(vector_store="milvus", milvus_uri=o["scale_milvus_uri"], milvus_index=o["scale_milvus_index"]))
    built = build(faiss_dir, milvus_dir, store, job.say)
    args = {"corpus": str(corpus), "questions": [q for _, q in job.questions], "top_k": o["top_k"] or Settings().top_k,
            "embedder": info["embedder"], "sweep": False, "held_out": o["scale_held_out"], "imports": ["pymilvus"]}
    probes = {}
    for name, index in (("faiss", faiss_dir), ("milvus", milvus_dir)):
        job.say(f"measuring {name} in a fresh process")
        probes[name] = run_probe({**args, "index": str(index)})
    lite = Path(store.resolved_uri(milvus_dir))
    report = {**job.header(), "scale_store": {"corpus": info, "store": {"uri": store.uri or "milvus-lite", "index": store.index},
                                              "build": built, "probes": probes,
                                              "milvus_lite_mb": folder_mb(lite) if lite.exists() else None}}
    report["load_average_end"] = machine_info()["load_average"]
    return "scale-store", report, markdown(report)


def markdown(report: dict) -> str:
    s, m = report["scale_store"], report["machine"]
    f, v, c, b = s["probes"]["faiss"], s["probes"]["milvus"], s["corpus"], s["build"]

    def row(label, key, digits=1, unit=""):
        return f"| {label} | {fmt(f.get(key), digits)}{unit} | {fmt(v.get(key), digits)}{unit} |"

    def pair(label, k50, k95):
        return (f"| {label} | {fmt(f.get(k50), 1)} / {fmt(f.get(k95), 1)} ms | {fmt(v.get(k50), 1)} / {fmt(v.get(k95), 1)} ms |")

    lines = [f"Command: `{report['command']}`  ",
             f"Measured {report['date']} on {m['cpu_count']} × {m['cpu']}, load average {m['load_average']} at start, "
             f"{report['load_average_end']} at end. The same {f['live_chunks']:,} live chunks, BM25 files and queries "
             f"({report['questions']} questions, {f['queries'] - report['questions']} held-out real chunks); FAISS: {f['faiss_index']}, "
             f"Milvus: {s['store']['uri']}, {v['faiss_index']}. Each measured in a fresh process, pymilvus imported before the clock starts.", "",
             "| measure | FAISS | Milvus |", "|---|---:|---:|",
             f"| vectors into the store (build): inserted / index complete | (`rag bench --scale-index`) | "
             f"{fmt(b.get('insert_s'), 0)} / {fmt(b.get('ready_s'), 0)} s{' (an earlier run)' if b.get('cached') else ''} |",
             row("open (`Retriever.data`: manifest, chunks, BM25, the vector store loaded)", "open_s", 2, " s"),
             row("resident memory of the opened index (MB)", "rss_index_mb", 0),
             row("resident memory after all the searches, whole process (MB)", "rss_after_search_mb", 0),
             pair("dense search alone (query vector given): p50 / p95", "dense_ms_p50", "dense_ms_p95"),
             pair("hybrid search, questions (embedding + dense + BM25 + fusion): p50 / p95",
                  "questions_hybrid_ms_p50", "questions_hybrid_ms_p95"),
             pair("of which the index (query vector given), questions: p50 / p95", "questions_search_ms_p50", "questions_search_ms_p95"),
             pair(f"hybrid search, all {f['queries']} queries: p50 / p95", "hybrid_ms_p50", "hybrid_ms_p95"),
             row("dense recall@10 against exact search (all queries)", "recall_at_10", 3),
             f"| files on disk | {fmt(f['disk_mb'], 0)} MB | {fmt(v['disk_mb'], 0)} MB (hard links) + "
             f"{fmt(s.get('milvus_lite_mb'), 0)} MB milvus-lite |"]
    return "\n".join(lines) + "\n"
