"""`rag bench --scale-index N` (a variant of the retrieval mode, `--retrieval-scale`): the product's large index (rag.ingest.large) over N chunks, built once
and opened the way `rag ask` opens it -> OUT/scale.json and OUT/scale.md.

Embedding a million real chunks takes days on two cores, so the corpus is generated around real
ones (rag.measure.bench.retrieval's generator): the --index's own chunks and those of each
--scale-anchors index, with their real vectors, then synthetic vectors (mixtures of two real ones
plus noise) and texts (real chunks with 30% of their words redrawn). 200 real chunks are held out
as queries beside the question file's questions. Everything is cached in --scale-dir: corpus/
(vectors.npy, texts.jsonl, queries.json) and index/; a second run only measures. The measurements
run in a fresh process (rag.measure.bench.scale_probe): open time, resident memory after opening,
hybrid search p50/p95 through `Retriever.search`, dense recall@10 against exact search by nprobe;
then a few files are removed and added in place (rag.ingest.store.update_large_index) and the
updated index opened and searched again.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np

from rag.errors import InputError
from rag.measure.bench.common import fmt, machine_info, measured

OPTIONS = [
    click.option("--scale-index", type=click.IntRange(1000), metavar="N",
                 help="Build (once) and measure the large memory-mapped index over N chunks."),
    click.option("--scale-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/scale"), show_default=True,
                 help="Cache for --scale-index: the generated corpus and the index."),
    click.option("--scale-anchors", type=click.Path(exists=True, file_okay=False, path_type=Path), multiple=True,
                 help="More indexes whose real chunks and vectors the corpus is generated around (repeatable)."),
    click.option("--scale-compare", type=click.IntRange(1000), metavar="M",
                 help="With --scale-index: compare FAISS index types on the corpus's first M vectors instead."),
]
HELD_OUT = 200
FILE_CHUNKS = 20  # generated chunks per generated file
BLOCK = 100_000
UPDATE_FILES = 5  # files removed and files added by the update measurement


def make_corpus(folder: Path, n: int, own_index: Path, anchor_indexes: tuple[Path, ...]) -> dict:
    """Write folder/{vectors.npy, texts.jsonl, queries.json} (skipped when there for this n)."""
    from rag.ingest.store import load_index
    from rag.measure.bench.retrieval import synthetic_vectors, vary_texts

    info_path = folder / "corpus.json"
    if info_path.is_file() and json.loads(info_path.read_text())["chunks"] == n:
        return json.loads(info_path.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    own = load_index(own_index)
    lang = own.manifest.language
    texts, sources, vecs = [], [], []
    for c in own.chunks:
        texts.append(c.text)
        sources.append(c.source)
    vecs.append(np.asarray(own.vectors))
    pool_texts, pool_sources, pool_vecs = [], [], []
    for path in anchor_indexes:
        data = load_index(path)
        pool_texts += [c.text for c in data.chunks]
        pool_sources += [f"{Path(path).name}/{c.source}" for c in data.chunks]
        pool_vecs.append(np.asarray(data.vectors))
    pool_v = np.vstack(pool_vecs) if pool_vecs else np.zeros((0, vecs[0].shape[1]), np.float32)
    rng = random.Random(0)
    order = list(range(len(pool_texts)))
    rng.shuffle(order)
    held = sorted(order[:HELD_OUT]) if len(order) > 4 * HELD_OUT else []
    keep = sorted(set(order) - set(held))
    texts += [pool_texts[i] for i in keep]
    sources += [pool_sources[i] for i in keep]
    vecs.append(pool_v[keep])
    real = np.vstack(vecs)
    if len(real) > n:
        raise InputError(f"--scale-index {n} is below the {len(real)} real chunks; pass a larger N")
    out = np.lib.format.open_memmap(folder / "vectors.npy", mode="w+", dtype=np.float32, shape=(n, real.shape[1]))
    out[: len(real)] = real
    nprng = np.random.default_rng(0)
    anchor_texts = texts[len(own.chunks):] or texts
    with open(folder / "texts.jsonl", "w", encoding="utf-8") as f:
        for t, s in zip(texts, sources):
            f.write(json.dumps({"text": t, "source": s}, ensure_ascii=False) + "\n")
        for at in range(len(real), n, BLOCK):
            m = min(BLOCK, n - at)
            out[at : at + m] = synthetic_vectors(real, m, nprng)
            for i, t in enumerate(vary_texts(anchor_texts, m, rng)):
                f.write(json.dumps({"text": t, "source": f"scale/{(at + i - len(real)) // FILE_CHUNKS:06d}.txt"}, ensure_ascii=False) + "\n")
    out.flush()
    del out
    queries = {"texts": [pool_texts[i] for i in held], "vectors": pool_v[held].tolist()}
    (folder / "queries.json").write_text(json.dumps(queries))
    info = {"chunks": n, "real_chunks": len(real), "own_chunks": len(own.chunks), "held_out": len(held), "language": lang,
            "embedder": own.manifest.embedder, "dim": int(real.shape[1]), "anchor_indexes": [str(p) for p in anchor_indexes]}
    info_path.write_text(json.dumps(info))
    return info


def build(corpus: Path, index_dir: Path, info: dict, settings, say) -> dict:
    """The product's build of a large index from the cached corpus (the path `rag index` takes from
    LARGE_MIN_CHUNKS chunks on); {} when it is already built."""
    from rag.ingest.bm25 import LexicalIndex
    from rag.ingest.store import FORMAT_VERSION, Manifest, live_generation, save_index
    from rag.schema import Chunk

    if live_generation(index_dir) is not None:
        saved = index_dir.parent / "build.json"
        return {**json.loads(saved.read_text()), "cached": True} if saved.is_file() else {}
    vectors = np.load(corpus / "vectors.npy", mmap_mode="r")
    rows = [json.loads(line) for line in open(corpus / "texts.jsonl", encoding="utf-8")]
    files: dict[str, dict] = {}
    for i, r in enumerate(rows):
        rec = files.setdefault(r["source"], {"sha256": "", "title": r["source"], "chunks": 0, "row": i})
        rec["chunks"] += 1
    say(f"BM25 over {len(rows)} chunks")
    t0 = time.perf_counter()
    lexical = LexicalIndex.build([r["text"] for r in rows], info["language"])
    bm25_s = time.perf_counter() - t0
    chunks = (Chunk(id=f"c{i}", source=r["source"], start=0, end=len(r["text"]), text=r["text"]) for i, r in enumerate(rows))
    manifest = Manifest(format_version=FORMAT_VERSION, embedder=info["embedder"], dim=info["dim"], chunk_tokens=settings.chunk_tokens,
                        chunk_overlap=settings.chunk_overlap, language=info["language"], n_chunks=len(rows), files=files,
                        docs_dir="generated")
    say("chunks, vectors, IVF training and adding, BM25 files")
    t0 = time.perf_counter()
    save_index(index_dir, manifest, chunks, vectors, lexical)
    out = {"bm25_s": round(bm25_s, 1), "write_s": round(time.perf_counter() - t0, 1), "load_average": machine_info()["load_average"]}
    (index_dir.parent / "build.json").write_text(json.dumps(out))
    return out


def update(corpus: Path, index_dir: Path, info: dict) -> dict:
    """Remove UPDATE_FILES generated files and add UPDATE_FILES new ones through the product's
    in-place update; returns what it took and the files involved."""
    from rag.ingest.store import load_index, update_large_index
    from rag.measure.bench.retrieval import synthetic_vectors, vary_texts
    from rag.schema import Chunk

    data = load_index(index_dir)
    files = data.manifest.files
    generated = sorted(r for r in files if r.startswith("scale/"))
    removed = generated[:: max(1, len(generated) // UPDATE_FILES)][:UPDATE_FILES]
    rng = random.Random(data.layout["rows"])  # each run adds files of its own
    anchors = np.asarray(data.vectors[info["own_chunks"]: info["real_chunks"]])
    base = [data.chunks[i].text for i in range(info["own_chunks"], min(info["real_chunks"], info["own_chunks"] + 2000))]
    added = {}
    for j in range(UPDATE_FILES):
        rel = f"added/{time.time_ns()}-{j}.txt"
        texts = vary_texts(base, FILE_CHUNKS, rng)
        chunks = [Chunk(id=f"{rel}#{i}", source=rel, start=0, end=len(t), text=t) for i, t in enumerate(texts)]
        added[rel] = (chunks, synthetic_vectors(anchors, len(chunks), np.random.default_rng(data.layout["rows"] + j)))
    records = {rel: rec for rel, rec in files.items() if rel not in removed}
    records.update({rel: {"sha256": "", "title": rel, "chunks": len(c)} for rel, (c, _) in added.items()})
    t0 = time.perf_counter()
    update_large_index(index_dir, data, records, added)
    took = time.perf_counter() - t0
    probe_text = next(iter(added.values()))[0][0].text
    return {"update_s": round(took, 2), "removed_files": removed, "added_files": list(added), "probe_text": probe_text}


def compare_types(corpus: Path, m: int, say) -> list[dict]:
    """FAISS index types on the first m vectors of the corpus: build time, bytes per vector,
    single-query latency and recall@10 against exact search for the held-out real chunks."""
    import faiss

    from rag.ingest import large

    vectors = np.ascontiguousarray(np.load(corpus / "vectors.npy", mmap_mode="r")[:m])
    queries = np.asarray(json.loads((corpus / "queries.json").read_text())["vectors"], np.float32)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    truth = exact.search(queries, 10)[1]
    d, nlist = vectors.shape[1], large.nlist_for(m)

    def ivf_pq():
        ix = faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, nlist, 48, 8, faiss.METRIC_INNER_PRODUCT)
        ix.cp.niter = 10
        ix.train(vectors[np.random.default_rng(0).choice(m, min(m, nlist * large.TRAIN_PER_LIST), replace=False)])
        ix.add(vectors)
        return ix

    def hnsw_sq8():
        ix = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, 32, faiss.METRIC_INNER_PRODUCT)
        ix.hnsw.efConstruction = 80
        ix.train(vectors[: min(m, 100_000)])
        ix.add(vectors)
        return ix

    builders = {"ivf-sq8": lambda: large.build_ivf(vectors), "ivf-pq48": ivf_pq, "hnsw32-sq8": hnsw_sq8}
    settings = {"ivf-sq8": [(f"nprobe {p}, {r}·k re-scored", {"nprobe": p, "refine": r}) for p, r in ((16, 1), (32, 1), (32, 4), (64, 4))],
                "ivf-pq48": [(f"nprobe {p}, {r}·k re-scored", {"nprobe": p, "refine": r}) for p, r in ((32, 1), (32, 4), (64, 8))],
                "hnsw32-sq8": [(f"efSearch {e}", {"ef": e}) for e in (64, 128, 256)]}
    rows = []
    for name, make in builders.items():
        say(f"FAISS {name} over {m} vectors")
        t0 = time.perf_counter()
        ix = make()
        build_s = time.perf_counter() - t0
        size = len(faiss.serialize_index(ix)) / m
        for label, p in settings[name]:
            if "ef" in p:
                ix.hnsw.efSearch = p["ef"]
                searcher = ix
            else:
                searcher = large.RefinedIVF(ix, vectors, p["nprobe"], p["refine"])
            got, ms = [], []
            for q in queries:
                t0 = time.perf_counter()
                got.append(searcher.search(q[None, :], 10)[1][0])
                ms.append((time.perf_counter() - t0) * 1000)
            rows.append({"index": name, "setting": label, "vectors": m, "build_s": round(build_s, 1), "bytes_per_vector": round(size),
                         "ms_p50": float(np.percentile(ms, 50)), "ms_p95": float(np.percentile(ms, 95)),
                         "recall_at_10": round(float(np.mean([len(set(g) & set(t)) / 10 for g, t in zip(got, truth)])), 4)})
        del ix
    return rows


def compare_markdown(report: dict) -> str:
    lines = [measured(report) + " Queries: the held-out real chunks. Exact re-scoring reads the stored float32 vectors.", "",
             "| index | search setting | vectors | build (s) | bytes/vector | search p50 (ms) | p95 (ms) | recall@10 |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['index']} | {r['setting']} | {r['vectors']:,} | {r['build_s']} | {r['bytes_per_vector']} | {fmt(r['ms_p50'])} | "
              f"{fmt(r['ms_p95'])} | {fmt(r['recall_at_10'], 3)} |" for r in report["types"]]
    return "\n".join(lines) + "\n"


def run_probe(args: dict) -> dict:
    """rag.measure.bench.scale_probe in a fresh process (nothing of the build in its memory)."""
    out = subprocess.run([sys.executable, "-m", "rag.measure.bench.scale_probe", json.dumps(args)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise InputError(f"the scale probe failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(job) -> tuple[str, dict, str]:
    from rag.options import settings_from

    o = job.options
    settings = settings_from(job.ctx, index_dir=o["index_dir"], top_k=o["top_k"])
    folder = Path(o["scale_dir"])
    corpus, index_dir = folder / "corpus", folder / "index"
    t0 = time.perf_counter()
    job.say(f"corpus of {o['scale_index']} chunks in {corpus}")
    info = make_corpus(corpus, o["scale_index"], settings.index_dir, tuple(o["scale_anchors"]))
    corpus_s = time.perf_counter() - t0
    if o.get("scale_compare"):
        report = {**job.header(), "types": compare_types(corpus, min(o["scale_compare"], info["chunks"]), job.say)}
        report["load_average_end"] = machine_info()["load_average"]
        return "scale-types", report, compare_markdown(report)
    t0 = time.perf_counter()
    built = build(corpus, index_dir, info, settings, job.say)
    build_s = None if built.get("cached") else time.perf_counter() - t0
    args = {"index": str(index_dir), "corpus": str(corpus), "questions": [q for _, q in job.questions], "top_k": settings.top_k,
            "embedder": info["embedder"]}
    job.say("measuring in a fresh process")
    probe = run_probe(args)
    job.say("in-place update")
    upd = update(corpus, index_dir, info)
    after = run_probe({**args, "update": upd, "sweep": False})
    report = {**job.header(), "scale": {"corpus": info, "corpus_s": round(corpus_s, 1), "build": built,
                                        "build_s": round(build_s, 1) if build_s and built else None, "probe": probe,
                                        "update": upd, "after_update": after}}
    report["load_average_end"] = machine_info()["load_average"]
    return "scale", report, scale_markdown(report)


def scale_markdown(report: dict) -> str:
    s = report["scale"]
    p, a, c = s["probe"], s["after_update"], s["corpus"]
    b = s["build"]
    lines = [measured(report) + f" {c['chunks']:,} chunks: {c['real_chunks']:,} real ones with their real "
             f"{c['embedder']} vectors, the rest generated around them; queries: {report['questions']} questions and "
             f"{c['held_out']} held-out real chunks. Index: {p['faiss_index']}, nprobe {p['nprobe']}, "
             f"{p['refine']}·k candidates re-scored exactly; files on disk {fmt(p['disk_mb'], 0)} MB.", "",
             "| measure | value | target |", "|---|---:|---:|",
             f"| build, BM25 + (chunks, vectors, IVF, BM25 files){' (an earlier run)' if b.get('cached') else ''} | "
             f"{fmt(b.get('bm25_s'), 0)} + {fmt(b.get('write_s'), 0)} s | – |" if b else "| build | (cached, not timed) | – |",
             f"| open (`Retriever.data`, fresh process) | {fmt(p['open_s'], 3)} s | ≤ 2 s |",
             f"| resident memory of the opened index (RSS after − before opening) | {fmt(p['rss_index_mb'], 0)} MB | ≤ 2,048 MB |",
             f"| RSS growth over all the searches (after the queries were embedded) | {fmt(p['rss_search_growth_mb'], 0)} MB, "
             f"of which file-backed (mapped index pages) {fmt(p['rss_search_growth_file_mb'], 0)} MB | – |",
             f"| whole process after the searches (embedder included) | {fmt(p['rss_after_search_mb'], 0)} MB | – |",
             f"| hybrid search, questions: p50 / p95 (query embedding + IVF + BM25 + fusion) | "
             f"{fmt(p['questions_hybrid_ms_p50'], 1)} / {fmt(p['questions_hybrid_ms_p95'], 1)} ms | ≤ 50 / 150 ms |",
             f"| of which the index (given the query vector), questions: p50 / p95 | {fmt(p['questions_search_ms_p50'], 1)} / "
             f"{fmt(p['questions_search_ms_p95'], 1)} ms | – |",
             f"| query embedding, all queries: p50 / p95 | {fmt(p['embed_ms_p50'], 1)} / {fmt(p['embed_ms_p95'], 1)} ms | – |",
             f"| the index, held-out passages as queries (~100 terms each): p50 / p95 | {fmt(p['passages_search_ms_p50'], 1)} / "
             f"{fmt(p['passages_search_ms_p95'], 1)} ms | – |",
             f"| hybrid search, all {p['queries']} queries: p50 / p95 | {fmt(p['hybrid_ms_p50'], 1)} / {fmt(p['hybrid_ms_p95'], 1)} ms | – |",
             f"| dense recall@10 against exact search (all queries) | {fmt(p['recall_at_10'], 3)} | ≥ 0.95 |",
             f"| update: {len(s['update']['removed_files'])} files removed, {len(s['update']['added_files'])} added, in place | "
             f"{fmt(s['update']['update_s'], 1)} s | – |",
             f"| after the update: open / questions' hybrid p50 / recall@10 / added file found / removed files returned | "
             f"{fmt(a['open_s'], 3)} s / {fmt(a['questions_hybrid_ms_p50'], 1)} ms / {fmt(a['recall_at_10'], 3)} / "
             f"{fmt(a.get('added_found'))} / {a.get('removed_returned')} | – |"]
    if p.get("sweep"):
        lines += ["", "Dense search alone by nprobe and re-scoring (exact = the stored float32 vectors):", "",
                  "| nprobe | candidates re-scored | dense p50 (ms) | dense p95 (ms) | recall@10 |", "|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['nprobe']} | {r['refine']}·k | {fmt(r['ms_p50'], 2)} | {fmt(r['ms_p95'], 2)} | {fmt(r['recall_at_10'], 3)} |"
                  for r in p["sweep"]]
    return "\n".join(lines) + "\n"
