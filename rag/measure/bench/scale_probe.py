"""The measuring half of `rag bench --scale-index`, run in a fresh process by rag.measure.bench.scale:
`python -m rag.measure.bench.scale_probe '{"index": ..., "corpus": ..., "questions": [...], "top_k": 4}'`
prints one JSON line: open time, resident memory before and after opening, hybrid search latency,
dense recall@10 against exact search (and by nprobe when "sweep" is not false)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

SWEEP = ((8, 4), (16, 4), (32, 1), (32, 4), (64, 4), (128, 4))


def memory_mb() -> dict:
    """VmRSS and its file-backed part (memory-mapped index files count there) in MB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmRSS", "RssFile", "RssAnon"):
            out[key] = int(line.split()[1]) / 1024
    return out


def exact_top(vectors: np.ndarray, deleted: np.ndarray, queries: np.ndarray, k: int, block: int = 200_000) -> np.ndarray:
    """Exact top-k rows by inner product over the memory-mapped vectors, deleted rows left out."""
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.full((len(queries), k), -1, np.int64)
    for at in range(0, len(vectors), block):
        s = queries @ np.asarray(vectors[at : at + block]).T
        gone = deleted[(deleted >= at) & (deleted < at + block)] - at
        s[:, gone] = -np.inf
        cand_s = np.concatenate([best_s, s], axis=1)
        cand_i = np.concatenate([best_i, np.broadcast_to(np.arange(at, at + s.shape[1]), s.shape)], axis=1)
        top = np.argpartition(-cand_s, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, top, 1), np.take_along_axis(cand_i, top, 1)
    return best_i


def recall(index, queries: np.ndarray, truth: np.ndarray, k: int) -> tuple[float, list[float]]:
    got, ms = [], []
    for q in queries:
        t0 = time.perf_counter()
        got.append(index.search(q[None, :], k)[1][0])
        ms.append((time.perf_counter() - t0) * 1000)
    return float(np.mean([len(set(g) & set(t)) / k for g, t in zip(got, truth)])), ms


def main(args: dict) -> dict:
    t0 = time.perf_counter()
    from rag.config import Settings
    from rag.retrieval.embedders import embed_queries
    from rag.retrieval.remote import embedder_for
    from rag.retrieval.search import Retriever

    # The embedder the corpus's real vectors came from (the anchors' indexes), whatever the default is now.
    settings = Settings.from_env(index_dir=Path(args["index"]), embedder=args["embedder"])
    embedder = embedder_for(settings)
    embedder.embed(["warm-up"])
    import bm25s  # noqa: F401  (imported before the clock starts, as in a running app)
    import faiss  # noqa: F401
    import importlib

    for module in args.get("imports", []):  # a vector store's client, as in a running app
        importlib.import_module(module)

    imports_s = time.perf_counter() - t0
    before = memory_mb()
    retriever = Retriever(settings.index_dir, embedder, settings.fusion_candidates)
    t0 = time.perf_counter()
    data = retriever.data
    open_s = time.perf_counter() - t0
    opened = memory_mb()
    queries = json.loads((Path(args["corpus"]) / "queries.json").read_text())
    if args.get("held_out") is not None:  # fewer held-out passages, for a slower store
        queries = {k: v[: args["held_out"]] for k, v in queries.items()}
    texts = list(args["questions"]) + queries["texts"]
    # Each query is new: its embedding (memoised by the retriever, as in `rag ask`) is timed apart
    # from the search of the index that follows, and the whole is their sum. All queries are
    # embedded first, so the memory the embedder takes for long ones is not counted as the index's.
    embed = []
    for q in texts:
        t0 = time.perf_counter()
        retriever.query_vector(q)
        embed.append((time.perf_counter() - t0) * 1000)
    embedded = memory_mb()
    index_ms = []
    for q in texts:
        t0 = time.perf_counter()
        retriever.search(q, args["top_k"])
        index_ms.append((time.perf_counter() - t0) * 1000)
    hybrid = [a + b for a, b in zip(embed, index_ms)]
    nq = len(args["questions"])
    searched = memory_mb()
    qv = np.vstack([embed_queries(embedder, list(args["questions"])), np.asarray(queries["vectors"], np.float32)]).astype(np.float32)
    k = 10
    truth = exact_top(data.vectors, data.lexical.deleted, qv, k)
    r10, dense_ms = recall(data.faiss, qv, truth, k)
    out = {"faiss_index": data.manifest.faiss_index, "rows": len(data.chunks), "live_chunks": data.manifest.n_chunks,
           "nprobe": getattr(data.faiss, "nprobe", None), "refine": getattr(data.faiss, "refine", None), "imports_s": round(imports_s, 2),
           "open_s": round(open_s, 4), "disk_mb": sum(p.stat().st_size for p in data.path.rglob("*") if p.is_file()) / 1e6,
           "rss_before_open_mb": before["VmRSS"], "rss_index_mb": opened["VmRSS"] - before["VmRSS"], "rss_after_embedding_mb": embedded["VmRSS"],
           "rss_search_growth_mb": searched["VmRSS"] - embedded["VmRSS"], "rss_search_growth_file_mb": searched["RssFile"] - embedded["RssFile"],
           "questions_hybrid_ms_p50": float(np.percentile(hybrid[:nq], 50)), "questions_hybrid_ms_p95": float(np.percentile(hybrid[:nq], 95)),
           "questions_search_ms_p50": float(np.percentile(index_ms[:nq], 50)), "questions_search_ms_p95": float(np.percentile(index_ms[:nq], 95)),
           "passages_search_ms_p50": float(np.percentile(index_ms[nq:], 50)) if len(texts) > nq else None,
           "passages_search_ms_p95": float(np.percentile(index_ms[nq:], 95)) if len(texts) > nq else None,
           "rss_file_mb": opened["RssFile"] - before["RssFile"], "rss_after_search_mb": searched["VmRSS"],
           "rss_index_after_search_mb": searched["VmRSS"] - before["VmRSS"],
           "queries": len(texts), "hybrid_ms_p50": float(np.percentile(hybrid, 50)), "hybrid_ms_p95": float(np.percentile(hybrid, 95)),
           "embed_ms_p50": float(np.percentile(embed, 50)), "embed_ms_p95": float(np.percentile(embed, 95)),
           "search_ms_p50": float(np.percentile(index_ms, 50)), "search_ms_p95": float(np.percentile(index_ms, 95)),
           "recall_at_10": round(r10, 4),
           "dense_ms_p50": float(np.percentile(dense_ms, 50)), "dense_ms_p95": float(np.percentile(dense_ms, 95))}
    if args.get("sweep", True):
        rows, keep = [], (data.faiss.nprobe, data.faiss.refine)
        for nprobe, refine in SWEEP:
            data.faiss.nprobe, data.faiss.refine = nprobe, refine
            r, ms = recall(data.faiss, qv, truth, k)
            rows.append({"nprobe": nprobe, "refine": refine, "recall_at_10": round(r, 4),
                         "ms_p50": float(np.percentile(ms, 50)), "ms_p95": float(np.percentile(ms, 95))})
        data.faiss.nprobe, data.faiss.refine = keep
        out["sweep"] = rows
    if args.get("update"):
        upd = args["update"]
        # An added file's chunk is found by its text (the BM25 delta) and by its vector (FAISS).
        hits = retriever.search(upd["probe_text"], args["top_k"])
        row = data.manifest.files[upd["added_files"][0]]["row"]
        lexical_top = data.lexical.search(upd["probe_text"], 1)
        dense_top = data.faiss.search(np.asarray(data.vectors[row : row + 1]), 1)[1][0]
        out["added_found"] = (any(h.chunk.source in upd["added_files"] for h in hits)
                              and bool(lexical_top) and lexical_top[0][0] == row and int(dense_top[0]) == row)
        gone = set(upd["removed_files"])
        out["removed_returned"] = sum(h.chunk.source in gone for q in texts[:50] for h in retriever.search(q, args["top_k"]))
    return out


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
