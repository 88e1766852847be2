"""`rag bench --retrieval-scale N`: query embedding, FAISS index types, BM25 and the engine's whole
hybrid search over N chunks (real ones, and generated ones around them) -> OUT/retrieval.json and
OUT/retrieval.md."""

from __future__ import annotations

import random
import re
import tempfile
import time
from pathlib import Path
from typing import Callable

import click
import numpy as np

from rag.answer.assistant import Assistant
from rag.errors import InputError
from rag.measure.bench import scale
from rag.measure.bench.common import fmt, machine_info, measured, percentile
from rag.retrieval.embedders import embed_queries

OPTIONS = [
    click.option("--retrieval-scale", type=click.IntRange(1), metavar="N", help="Time retrieval over an index of N chunks instead."),
    click.option("--scale-docs", type=click.Path(exists=True, file_okay=False, path_type=Path),
                 help="Real text for --retrieval-scale (default: the index's own chunks)."),
    *scale.OPTIONS,
]

def vary_texts(base: list[str], n: int, rng: random.Random, replace: float = 0.3) -> list[str]:
    """n chunk texts made from real ones: a random base chunk with a share of its words replaced by
    words drawn from the whole corpus by frequency, so BM25 sees a real skew of common and rare terms."""
    docs = [re.findall(r"[^\W_]+", t) for t in base]
    pool = [w for d in docs for w in d] or ["empty"]
    out = []
    for _ in range(n):
        words = list(rng.choice(docs)) or ["empty"]
        for i in range(len(words)):
            if rng.random() < replace:
                words[i] = rng.choice(pool)
        out.append(" ".join(words))
    return out


def synthetic_vectors(anchors: np.ndarray, n: int, rng: np.random.Generator, noise: float = 0.5) -> np.ndarray:
    """n unit vectors around real embeddings (a mixture of two plus Gaussian noise of about the
    size of the distance between neighbouring chunks), keeping the clustered shape of real data
    that an approximate index is judged on."""
    d = anchors.shape[1]
    a = anchors[rng.integers(0, len(anchors), n)]
    b = anchors[rng.integers(0, len(anchors), n)]
    mix = rng.uniform(0.6, 1.0, (n, 1)).astype(np.float32)
    v = mix * a + (1 - mix) * b + rng.normal(0, noise / np.sqrt(d), (n, d)).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _time_ms(fn: Callable[[], object], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


EF_SEARCH_CHOICES = (128, 256, 512, 1024, 2048)


def faiss_candidates(vectors: np.ndarray, threads: int) -> dict[str, Callable[[], object]]:
    """Index builders to compare; each returns a searchable FAISS index."""
    import faiss

    faiss.omp_set_num_threads(threads)
    d = vectors.shape[1]

    def flat():
        ix = faiss.IndexFlatIP(d)
        ix.add(vectors)
        return ix

    def hnsw(m: int = 32, ef: int = 64):
        def build():
            ix = faiss.IndexHNSWFlat(d, m, faiss.METRIC_INNER_PRODUCT)
            ix.hnsw.efConstruction = 80
            ix.add(vectors)
            ix.hnsw.efSearch = ef
            return ix
        return build

    def ivf(nlist: int, nprobe: int):
        def build():
            q = faiss.IndexFlatIP(d)
            ix = faiss.IndexIVFFlat(q, d, nlist, faiss.METRIC_INNER_PRODUCT)
            ix.train(vectors[:: max(1, len(vectors) // (nlist * 40))])
            ix.add(vectors)
            ix.nprobe = nprobe
            return ix
        return build

    nlist = max(16, int(4 * np.sqrt(len(vectors))))
    return {"flat-ip": flat, "hnsw32-ef64": hnsw(32, 64), "hnsw32-ef128": hnsw(32, 128),
            f"ivf{nlist}-nprobe16": ivf(nlist, 16), f"ivf{nlist}-nprobe64": ivf(nlist, 64)}


def real_chunks(assistant: Assistant, docs_dir: Path | None) -> list[str]:
    """Chunk texts of a real folder (through the engine's own loaders and chunker), or of the index."""
    if docs_dir is None:
        return [c.text for c in assistant.retriever.data.chunks]
    from rag.ingest.chunking import chunk_documents
    from rag.ingest.loaders import load_documents

    s = assistant.settings
    docs = load_documents(Path(docs_dir), s.max_file_mb).documents
    texts = [c.text for c in chunk_documents(docs, s.chunk_tokens, s.chunk_overlap)]
    if not texts:
        raise InputError(f"no text found in {docs_dir}; pass a folder with .txt, .md or .html files to --scale-docs")
    return texts


def measure_retrieval(assistant: Assistant, questions: list[tuple[str, str]], n_chunks: int, docs_dir: Path | None = None,
                      max_anchors: int = 8000, held_out: int = 100, repeats: int = 3, candidates: int = 40,
                      progress: Callable[[str], None] | None = None) -> dict:
    """Query embedding, each FAISS index type (latency, recall@candidates against exact search) and
    the engine's whole hybrid search, over an index of n_chunks chunks: up to max_anchors real
    chunks embedded with the real model, the rest generated around them."""
    import faiss

    from rag.ingest.bm25 import LexicalIndex
    from rag.ingest.store import (
        FORMAT_VERSION,
        HNSW_EF_SEARCH,
        Manifest,
        build_faiss,
        save_index,
    )
    from rag.retrieval.search import Retriever
    from rag.schema import Chunk

    say = progress or (lambda _: None)
    embedder = assistant.retriever.embedder
    threads = assistant.settings.n_threads
    lang = assistant.retriever.data.manifest.language
    base = real_chunks(assistant, docs_dir)
    rng = random.Random(0)
    rng.shuffle(base)
    probe_texts = base[:held_out] if len(base) > held_out * 2 else []
    anchor_texts = base[len(probe_texts):][:max_anchors]
    qtexts = [q for _, q in questions]
    embedder.embed(["warm-up"])
    embed_ms = [t for q in qtexts for t in _time_ms(lambda q=q: embed_queries(embedder, [q]), 1)]
    say(f"embedding {len(anchor_texts)} real chunks")
    t0 = time.perf_counter()
    anchors = embedder.embed(anchor_texts)
    embed_s = time.perf_counter() - t0
    qvecs = embed_queries(embedder, qtexts)
    probes = embedder.embed(probe_texts) if probe_texts else np.zeros((0, anchors.shape[1]), np.float32)
    # The index's own chunks go in too, so the eval questions have their real passages among the
    # generated ones and the approximate index can be judged on what reaches the prompt.
    own = assistant.retriever.data
    own_texts = [c.text for c in own.chunks] if docs_dir is not None else []
    own_vectors = own.vectors if own_texts else np.zeros((0, anchors.shape[1]), np.float32)
    real = len(own_texts) + len(anchor_texts)
    say(f"generating {n_chunks - real} more chunks around them")
    vectors = np.vstack([own_vectors, anchors, synthetic_vectors(anchors, max(n_chunks - real, 0), np.random.default_rng(0))])[:n_chunks]
    texts = (own_texts + anchor_texts + vary_texts(anchor_texts, max(n_chunks - real, 0), rng))[:n_chunks]

    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    query_sets = {"questions": qvecs, "held_out_chunks": probes}
    truth = {k: exact.search(v, candidates)[1] for k, v in query_sets.items() if len(v)}
    faiss_rows = []
    for name, build in faiss_candidates(vectors, threads).items():
        say(f"FAISS {name}")
        t0 = time.perf_counter()
        ix = build()
        build_s = time.perf_counter() - t0
        lat = [t for qv in qvecs for t in _time_ms(lambda qv=qv: ix.search(qv[None, :], candidates), repeats)]
        row = {"index": name, "build_s": round(build_s, 2), "search_ms_p50": percentile(lat, 50), "search_ms_p95": percentile(lat, 95)}
        for k, true_ids in truth.items():
            got = ix.search(query_sets[k], candidates)[1]
            row[f"recall_{k}"] = round(float(np.mean([len(set(g) & set(t)) / candidates for g, t in zip(got, true_ids)])), 4)
        faiss_rows.append(row)

    say("BM25 index")
    t0 = time.perf_counter()
    lexical = LexicalIndex.build(texts, lang)
    bm25_build_s = time.perf_counter() - t0
    bm25_ms = [t for q in qtexts + probe_texts[:20] for t in _time_ms(lambda q=q: lexical.search(q, candidates), repeats)]

    say("whole hybrid search through the engine's Retriever")
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        chunks = [Chunk(id=f"syn-{i}", source=f"scale/{i // 20:05d}.txt", start=0, end=len(t), text=t) for i, t in enumerate(texts)]
        manifest = Manifest(format_version=FORMAT_VERSION, embedder=embedder.name, dim=vectors.shape[1],
                            chunk_tokens=assistant.settings.chunk_tokens, chunk_overlap=assistant.settings.chunk_overlap,
                            language=lang, n_chunks=len(texts), files={}, docs_dir="scale")
        t0 = time.perf_counter()
        save_index(Path(tmp), manifest, chunks, vectors, lexical)
        save_s = time.perf_counter() - t0
        # No query memo: every timed search embeds its query, as a new question does.
        retriever = Retriever(Path(tmp), embedder, assistant.settings.fusion_candidates, query_memo=0)
        t0 = time.perf_counter()
        retriever.data
        load_s = time.perf_counter() - t0
        top_k = assistant.settings.top_k
        hybrid_ms = [t for q in qtexts for t in _time_ms(lambda q=q: retriever.search(q, top_k), repeats)]
        live = retriever.data.manifest.faiss_index
        # The same searches with exact FAISS: the share of the top-k passages the live index also returns.
        live_index = retriever.data.faiss

        def top_ids(index) -> list[list[str]]:
            retriever.data.faiss = index
            return [[h.chunk.id for h in retriever.search(q, top_k)] for q in qtexts]

        def agree(got: list[list[str]], want: list[list[str]]) -> float | None:
            return round(float(np.mean([len(set(g) & set(w)) / max(len(w), 1) for g, w in zip(got, want)])), 4) if want else None

        got = top_ids(live_index)
        want = top_ids(build_faiss(retriever.data.vectors, "flat-ip"))
        agreement = agree(got, want)
        ef_rows = []
        if isinstance(live_index, faiss.IndexHNSW):
            # The search-time breadth of the graph: what each setting costs and how close it comes to exact.
            retriever.data.faiss = live_index
            for ef in EF_SEARCH_CHOICES:
                live_index.hnsw.efSearch = ef
                lat = [t for qv in qvecs for t in _time_ms(lambda qv=qv: live_index.search(qv[None, :], candidates), repeats)]
                whole = [t for q in qtexts for t in _time_ms(lambda q=q: retriever.search(q, top_k), repeats)]
                ef_rows.append({"ef_search": ef, "faiss_ms_p50": percentile(lat, 50), "hybrid_ms_p50": percentile(whole, 50),
                                "topk_agreement": agree(top_ids(live_index), want)})
            live_index.hnsw.efSearch = HNSW_EF_SEARCH
    return {
        "chunks": len(texts), "real_chunks": real, "own_chunks": len(own_texts), "top_k": top_k, "docs_dir": str(docs_dir) if docs_dir else "the index",
        "held_out_queries": len(probe_texts), "candidates": candidates, "threads": threads,
        "anchor_embedding_s": round(embed_s, 1),
        "query_embedding_ms": {"p50": percentile(embed_ms, 50), "p95": percentile(embed_ms, 95)},
        "faiss": faiss_rows,
        "bm25": {"build_s": round(bm25_build_s, 1), "search_ms_p50": percentile(bm25_ms, 50), "search_ms_p95": percentile(bm25_ms, 95)},
        "hybrid": {"index_save_s": round(save_s, 1), "index_load_s": round(load_s, 2), "faiss_index": live,
                   "topk_agreement_with_exact": agreement, "ef_search": ef_rows,
                   "search_ms_p50": percentile(hybrid_ms, 50), "search_ms_p95": percentile(hybrid_ms, 95)},
    }


def retrieval_markdown(report: dict) -> str:
    r = report["retrieval"]
    recalls = [k for k in (r["faiss"][0] if r["faiss"] else {}) if k.startswith("recall_")]
    lines = [measured(report) + f" {r['threads']} threads. {r['chunks']} chunks: {r['real_chunks']} real ones "
             f"(the index's own {r.get('own_chunks', 0)} and chunks of {r['docs_dir']}) embedded with the real model, the rest generated around them (vectors: mixtures of two "
             f"real embeddings plus noise; texts: real chunks with 30% of their words redrawn). Queries: the "
             f"{report['questions']} eval questions and {r['held_out_queries']} held-out real chunks.", "",
             f"Query embedding: p50 {fmt(r['query_embedding_ms']['p50'])} ms, p95 {fmt(r['query_embedding_ms']['p95'])} ms. "
             f"BM25 search: p50 {fmt(r['bm25']['search_ms_p50'])} ms, p95 {fmt(r['bm25']['search_ms_p95'])} ms. "
             f"Whole hybrid search through `Retriever.search` (language detection is outside it; embedding + "
             f"{r['hybrid']['faiss_index']} + BM25 + fusion): **p50 {fmt(r['hybrid']['search_ms_p50'])} ms**, "
             f"p95 {fmt(r['hybrid']['search_ms_p95'])} ms. Its top-{r.get('top_k', 'k')} passages for the eval questions "
             f"are {fmt(r['hybrid'].get('topk_agreement_with_exact'), 3)} the same as with exact FAISS search.", "",
             "| FAISS index | build (s) | search p50 (ms) | search p95 (ms) | " + " | ".join(
                 f"recall@{r['candidates']}, {k[len('recall_'):].replace('_', ' ')}" for k in recalls) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(recalls)]
    for f in r["faiss"]:
        lines.append(f"| {f['index']} | {f['build_s']} | {fmt(f['search_ms_p50'])} | {fmt(f['search_ms_p95'])} | "
                     + " | ".join(fmt(f[k], 3) for k in recalls) + " |")
    if r["hybrid"].get("ef_search"):
        lines += ["", f"The live {r['hybrid']['faiss_index']} index inside the hybrid search, by its efSearch setting:", "",
                  f"| efSearch | FAISS search p50 (ms) | hybrid search p50 (ms) | top-{r['top_k']} passages as with exact search |",
                  "|---:|---:|---:|---:|"]
        lines += [f"| {e['ef_search']} | {fmt(e['faiss_ms_p50'])} | {fmt(e.get('hybrid_ms_p50'))} | {fmt(e['topk_agreement'], 3)} |"
                  for e in r["hybrid"]["ef_search"]]
    return "\n".join(lines) + "\n"


def selected(options: dict) -> bool:
    return bool(options["retrieval_scale"] or options.get("scale_index"))


def run(job) -> tuple[str, dict, str]:
    if job.options.get("scale_index"):
        return scale.run(job)
    assistant = job.assistant()
    report = {**job.header(), "retrieval": measure_retrieval(assistant, job.questions, job.options["retrieval_scale"],
                                                             job.options["scale_docs"], progress=job.say)}
    report["load_average_end"] = machine_info()["load_average"]
    return "retrieval", report, retrieval_markdown(report)
