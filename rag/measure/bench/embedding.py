"""`rag bench --embed`: the embedder's throughput on real chunks, every variant side by side in one
run (interleaved rounds, so a neighbour's load hits them alike) -> OUT/embed.json and OUT/embed.md.

The sample: the folder (default the Python library reference) chunked with the current chunker, and
480 chunks drawn with a fixed seed; `--embed-sample N` and `--embed-docs DIR` change it. Variants:
the export recipe before this one (SDPA attention, unfused, ONNX Runtime's default threads with
spinning, cut at 256 word pieces: the embedder as it was), the same graph with today's session
options, and today's fused graph at several batch sizes, with and without spinning threads, and its int8 copy
run by one session of every core's thread or by one single-thread session per core; the unfused graph
with static int8 quantization (embed_variants.static_int8), and llama.cpp on a GGUF conversion
(--embed-gguf). Each is compared to the first by cosine of its vectors.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from rag.measure.bench.common import cpu_times, fmt, machine_info, measured, others_share

DEFAULT_DOCS = Path("/usr/share/doc/python3-doc/html/library")

OPTIONS = [
    click.option("--embed", "embed_bench", is_flag=True, help="Time the embedder's variants on a sample of real chunks."),
    click.option("--embed-docs", type=click.Path(exists=True, file_okay=False, path_type=Path),
                 help=f"Folder the --embed sample is drawn from (default {DEFAULT_DOCS})."),
    click.option("--embed-sample", type=click.IntRange(8), default=480, show_default=True, help="Chunks in the --embed sample."),
    click.option("--rounds", type=click.IntRange(1), default=2, show_default=True, help="Rounds of --embed (median kept)."),
    click.option("--embed-gguf", type=click.Path(exists=True, dir_okay=False, path_type=Path), multiple=True,
                 help="Also time llama.cpp's BERT path on this GGUF conversion of the bundled model (repeatable; "
                      "docs/performance.md says how to make one)."),
]
# Chunks the static int8 variants are calibrated on: drawn from the same folder, none in the sample.
CALIBRATION = 64


def sample_chunks(folder: Path, n: int, seed: int = 0, calibration: int = 0) -> list[str]:
    """n chunk texts of the folder, as `rag index` cuts them, drawn reproducibly; with calibration > 0,
    also (as a second list) that many others, none of them in the first."""
    from rag.config import Settings
    from rag.ingest.chunking import chunk_document
    from rag.ingest.loaders import load_documents

    s = Settings()
    report = load_documents(folder)
    texts = [c.text for d in report.documents for c in chunk_document(d, s.chunk_tokens, s.chunk_overlap)]
    rng = random.Random(seed)
    picked = rng.sample(range(len(texts)), min(n, len(texts)))
    sample = [texts[i] for i in picked]
    if not calibration:
        return sample
    rest = sorted(set(range(len(texts))) - set(picked))
    return sample, [texts[i] for i in rng.sample(rest, min(calibration, len(rest)))]


def export_recipe_1(folder: Path, target: Path) -> Path:
    """The graph as the first recipe made it: torch's default (SDPA) attention, no fusion."""
    from rag.retrieval.embedders import export_hidden

    export_hidden(folder, target, "sdpa")
    return target


class Before:
    """The embedder as it was: ONNX Runtime's default session (its own thread count, spinning),
    texts cut at 256 word pieces, padded to the longest of a batch sorted by characters."""

    def __init__(self, path: Path, folder: Path):
        import onnxruntime
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.tokenizer.enable_truncation(256)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        out = np.zeros((len(texts), 384), np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            enc = self.tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in enc], np.int64)
            mask = np.array([e.attention_mask for e in enc], np.int64)
            h = self.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
            v = (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
            out[idx] = v / np.linalg.norm(v, axis=1, keepdims=True)
        return out


def measure_embedding(texts: list[str], cache_dir: Path, rounds: int, say, calibration: list[str] = (),
                      ggufs: tuple[Path, ...] = ()) -> dict:
    from rag.measure.bench.embed_variants import LlamaBert, static_int8
    from rag.retrieval.embedders import MiniLMEmbedder, bundled_minilm_dir, ensure_onnx

    folder = bundled_minilm_dir()
    tmp = Path(tempfile.mkdtemp(prefix="rag-embed-bench-"))
    say("exporting the previous recipe for comparison")
    old_graph = export_recipe_1(folder, tmp / "recipe1.onnx")
    fused = ensure_onnx(folder, cache_dir)
    cores = os.cpu_count() or 1
    # workers=1: one session whose `cores` threads split each operator (the embedder until 2026-12-03).
    variants = {
        "before: recipe 1, default session, batch 32": (Before(old_graph, folder), 32),
        "recipe 1 graph, today's session, batch 32": (MiniLMEmbedder(cache_dir, path=old_graph, workers=1), 32),
        "fused, spinning threads, batch 32": (MiniLMEmbedder(cache_dir, spinning=True, path=fused, workers=1), 32),
    }
    for bs in (4, 8, 16, 32):
        variants[f"fused, batch {bs}"] = (MiniLMEmbedder(cache_dir, path=fused, workers=1), bs)
    for bs in (2, 4, 8, 16):
        variants[f"fused int8 (per channel), batch {bs}"] = (MiniLMEmbedder(cache_dir, int8=True, workers=1), bs)
    for bs in (1, 2, 4, 8):
        variants[f"fused int8, {cores} single-thread sessions, batch {bs}"] = (MiniLMEmbedder(cache_dir, int8=True, workers=cores), bs)
    if calibration:
        say(f"static int8 graphs, calibrated on {len(calibration)} other chunks")
        for fmt_, outputs, label in (("QDQ", False, "QDQ, MatMul outputs float"), ("QOperator", True, "QOperator")):
            graph = static_int8(folder, tmp, list(calibration), fmt_, outputs)
            variants[f"unfused static int8 ({label}), batch 8"] = (MiniLMEmbedder(cache_dir, path=graph, workers=1), 8)
    for gguf in ggufs:
        variants[f"llama.cpp {gguf.name}, 1 thread, 1 sequence a call"] = (LlamaBert(gguf, folder, threads=1, max_tokens=256, max_seqs=1), 1)
    first = next(iter(variants))
    times: dict[str, list[float]] = {k: [] for k in variants}
    shares: dict[str, list[float]] = {k: [] for k in variants}
    vectors = {}
    for name, (emb, bs) in variants.items():  # warm-up: sessions loaded, first-call costs paid
        emb.embed(texts[:8], batch_size=bs)
    for r in range(rounds):
        for name, (emb, bs) in variants.items():
            before = cpu_times()
            t0 = time.perf_counter()
            vectors[name] = emb.embed(texts, batch_size=bs)
            times[name].append(time.perf_counter() - t0)
            shares[name].append(others_share(before, cpu_times()) or 0.0)
            say(f"round {r + 1}: {name}: {len(texts) / times[name][-1]:.1f} chunks/s")
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    pieces = [len(e.ids) for e in tok.encode_batch(texts)]
    # Past 256 word pieces "before" cut the text and today's embedder reads all of it: those differ
    # by design, so the cosine that checks the same vectors is over the others.
    within = np.array(pieces) <= 256
    ref = vectors[first]
    rows = []
    for name in variants:
        cos = (vectors[name] * ref).sum(1)
        rows.append({"variant": name, "chunks_per_s": round(len(texts) / statistics.median(times[name]), 2),
                     "cosine_min": round(float(cos[within].min()), 6), "cosine_mean": round(float(cos[within].mean()), 6),
                     "cosine_min_past_256": round(float(cos[~within].min()), 6) if (~within).any() else None,
                     "others_cpu": round(statistics.median(shares[name]), 3)})
    base = next((r for r in rows if r["variant"] == "fused int8 (per channel), batch 8"), rows[0])
    for row in rows:
        row["speedup"] = round(row["chunks_per_s"] / rows[0]["chunks_per_s"], 2)
        row["vs_int8_batch8"] = round(row["chunks_per_s"] / base["chunks_per_s"], 2)
    return {"chunks": len(texts), "word_pieces_mean": round(float(np.mean(pieces)), 1),
            "over_256": int(sum(p > 256 for p in pieces)), "rounds": rounds, "variants": rows}


def embed_markdown(report: dict) -> str:
    e = report["embed"]
    lines = [measured(report) + "  ",
             f"{e['chunks']} chunks, {e['word_pieces_mean']} word pieces on average ({e['over_256']} past 256); "
             f"median of {e['rounds']} interleaved rounds.", "",
             "| variant | chunks/s | × before | × int8 batch 8 | cosine to before, ≤ 256 pieces (min / mean) | min past 256 | CPU used by others |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['variant']} | {fmt(r['chunks_per_s'], 1)} | {fmt(r['speedup'])} | {fmt(r.get('vs_int8_batch8'))} "
              f"| {r['cosine_min']:.6f} / {r['cosine_mean']:.6f} "
              f"| {fmt(r.get('cosine_min_past_256'), 4)} | {fmt(r['others_cpu'])} |" for r in e["variants"]]
    return "\n".join(lines) + "\n"


def selected(options: dict) -> bool:
    return bool(options.get("embed_bench"))


def run(job) -> tuple[str, dict, str]:
    from rag.options import settings_from

    o = job.options
    settings = settings_from(job.ctx)
    job.say("sampling chunks")
    texts, calibration = sample_chunks(o["embed_docs"] or DEFAULT_DOCS, o["embed_sample"], calibration=CALIBRATION)
    report = {**job.header(), "embed": measure_embedding(texts, settings.cache_dir, o["rounds"], job.say, calibration,
                                                         tuple(o.get("embed_gguf") or ()))}
    report["load_average_end"] = machine_info()["load_average"]
    return "embed", report, embed_markdown(report)
