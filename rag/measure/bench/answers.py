"""The default `rag bench` mode: questions answered through build_assistant + Assistant.stream (the
engine of `rag ask` and the chat), cold and warm, with llama.cpp's own counters for the same calls
beside the wrapper's, peak RSS and load times -> OUT/bench.json and OUT/bench.md."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Callable

import click
import numpy as np

from rag.answer.assistant import Assistant
from rag.measure.bench.common import (
    command_line,
    cpu_times,
    current_rss_mb,
    fmt,
    git_commit,
    machine_info,
    measured,
    others_share,
    peak_rss_mb,
    percentile,
    ratio,
)
from rag.schema import Answer

OPTIONS = [click.option("--runs", type=click.IntRange(1), default=1, show_default=True, help="Warm passes over the questions.")]

CONTENDED = 0.25  # a call is "contended" when other processes used more than this share of the CPU

@dataclass
class Sample:
    id: str
    phase: str  # cold | cold-no-prompt-cache | cold-prompt-cache | warm
    retrieval_ms: float
    ttft_s: float  # wall clock from the call to the first text the user sees
    engine_ttft_s: float  # the engine's own figure (retrieval + model's first token)
    total_s: float
    prompt_tokens: int
    evaluated_tokens: int  # prompt tokens actually prefilled in this call
    restored_tokens: int  # prompt tokens restored from a RAM snapshot or the disk prompt cache
    restored_from: str
    completion_tokens: int
    prefill_tps: float | None
    decode_tps: float | None
    llama_prefill_tps: float | None
    llama_decode_tps: float | None
    prefill_ratio: float | None  # wrapper / llama.cpp, 1.0 = no overhead
    decode_ratio: float | None
    refused: bool
    others_cpu: float | None = None  # share of the machine's CPU used by other processes meanwhile
    error: str | None = None
    # The answering call's own counters, from the answer's timings: the generator's last_stats may be
    # a later call's (a quote's translation).
    decode_tokens: int = 0
    decode_s: float = 0.0
    model_ttft_s: float = 0.0
    llama: dict = field(default_factory=dict)


def ask_timed(assistant: Assistant, qid: str, question: str, phase: str, top_k: int | None = None) -> Sample:
    """One question through Assistant.stream, timed as a user would see it."""
    cpu0 = cpu_times()
    t0 = time.perf_counter()
    first = None
    answer: Answer | None = None
    for item in assistant.stream(question, top_k=top_k):
        if isinstance(item, Answer):
            answer = item
        elif first is None and isinstance(item, str) and item:
            first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    others = others_share(cpu0, cpu_times())
    t = answer.timings
    llama = t.get("llama") or {}
    evaluated = max(t.get("prompt_tokens", 0) - t.get("cached_prompt_tokens", 0), 0)
    prefill = t.get("prefill_tps") or None
    decode = t.get("decode_tps") or None
    lp, ld = llama.get("prefill_tps") or None, llama.get("decode_tps") or None
    return Sample(
        id=qid, phase=phase, retrieval_ms=t.get("retrieval_ms", 0.0), ttft_s=round(first if first is not None else total, 4),
        engine_ttft_s=t.get("ttft_s", 0.0), total_s=round(total, 4), prompt_tokens=t.get("prompt_tokens", 0),
        evaluated_tokens=evaluated, restored_tokens=t.get("restored_prompt_tokens", 0),
        restored_from=t.get("restored_from", ""),
        completion_tokens=t.get("completion_tokens", 0), prefill_tps=prefill, decode_tps=decode,
        llama_prefill_tps=round(lp, 2) if lp else None, llama_decode_tps=round(ld, 2) if ld else None,
        prefill_ratio=ratio(prefill, lp), decode_ratio=ratio(decode, ld), refused=answer.refused, others_cpu=others,
        decode_tokens=t.get("decode_tokens", 0), decode_s=t.get("decode_s", 0.0), model_ttft_s=t.get("model_ttft_s", 0.0),
        llama=llama,
    )

METRICS = (
    ("retrieval_ms", "retrieval (ms)"),
    ("ttft_s", "time to first token, visible (s)"),
    ("engine_ttft_s", "time to first token, engine (s)"),
    ("total_s", "total latency (s)"),
    ("prompt_tokens", "prompt tokens"),
    ("evaluated_tokens", "prompt tokens prefilled"),
    ("completion_tokens", "answer tokens"),
    ("prefill_tps", "prefill tokens/s (wrapper)"),
    ("llama_prefill_tps", "prefill tokens/s (llama.cpp)"),
    ("decode_tps", "decode tokens/s (wrapper)"),
    ("llama_decode_tps", "decode tokens/s (llama.cpp)"),
    ("prefill_ratio", "prefill wrapper / llama.cpp"),
    ("decode_ratio", "decode wrapper / llama.cpp"),
    ("others_cpu", "CPU share used by other processes"),
)


def summarize(samples: list[Sample]) -> dict:
    """p50, p95, mean and count of every metric over the samples that have it."""
    out = {}
    for key, _ in METRICS:
        vals = [float(getattr(s, key)) for s in samples if getattr(s, key) is not None and s.error is None]
        out[key] = {"p50": percentile(vals, 50), "p95": percentile(vals, 95),
                    "mean": round(float(np.mean(vals)), 4) if vals else None, "n": len(vals)}
    return out


def aggregate_ratios(samples: list[Sample], assistant_runs: list[dict]) -> dict:
    """Wrapper vs llama.cpp over all warm calls together: total tokens / total time on each side."""
    w = [r for r in assistant_runs if r.get("llama")]
    if not w:
        return {}
    wrapper_decode_tokens = sum(r["decode_tokens"] for r in w)
    wrapper_decode_s = sum(r["decode_s"] for r in w)
    llama_decode_tokens = sum(r["llama"]["eval_tokens"] for r in w)
    llama_decode_s = sum(r["llama"]["eval_ms"] for r in w) / 1000
    wrapper_prefill_tokens = sum(r["evaluated"] for r in w)
    wrapper_prefill_s = sum(r["ttft_s"] for r in w)
    llama_prefill_tokens = sum(r["llama"]["prompt_eval_tokens"] for r in w)
    llama_prefill_s = sum(r["llama"]["prompt_eval_ms"] for r in w) / 1000

    def rate(n: float, s: float) -> float | None:
        return round(n / s, 2) if s > 0 else None

    out = {
        "decode_tps_wrapper": rate(wrapper_decode_tokens, wrapper_decode_s),
        "decode_tps_llama": rate(llama_decode_tokens, llama_decode_s),
        "prefill_tps_wrapper": rate(wrapper_prefill_tokens, wrapper_prefill_s),
        "prefill_tps_llama": rate(llama_prefill_tokens, llama_prefill_s),
    }
    out["decode_ratio"] = ratio(out["decode_tps_wrapper"], out["decode_tps_llama"])
    out["prefill_ratio"] = ratio(out["prefill_tps_wrapper"], out["prefill_tps_llama"])
    return out


def _gen_record(sample: Sample) -> dict:
    return {"decode_tokens": sample.decode_tokens, "decode_s": sample.decode_s, "evaluated": sample.evaluated_tokens,
            "ttft_s": sample.model_ttft_s, "llama": sample.llama}


def run_bench(assistant: Assistant, questions: list[tuple[str, str]], runs: int = 1, top_k: int | None = None,
              cold_variants: bool = True, progress: Callable[[Sample], None] | None = None) -> dict:
    """Cold: the first question after start (KV cache empty), then, when the generator allows it, the
    same question from an emptied KV cache with and without the disk prompt cache. Warm: `runs`
    passes over all questions after that warm-up."""
    samples: list[Sample] = []
    gen_records: list[dict] = []
    generator = assistant.generator

    def one(qid: str, q: str, phase: str) -> Sample:
        # Embedded as a new question's query would be: with the engine's memo, the second pass (and
        # the cold variants) would find every query vector already made.
        assistant.retriever.forget_queries()
        try:
            s = ask_timed(assistant, qid, q, phase, top_k)
        except Exception as e:  # noqa: BLE001 - a failing question is reported, the run goes on
            s = Sample(qid, phase, 0, 0, 0, 0, 0, 0, 0, "", 0, None, None, None, None, None, None, False,
                       error=f"{type(e).__name__}: {e}")
        samples.append(s)
        if progress:
            progress(s)
        return s

    qid, q = questions[0]
    one(qid, q, "cold")
    cache = getattr(generator, "prompt_cache", None)
    if cold_variants and hasattr(generator, "reset"):
        generator.reset()
        generator.prompt_cache = None
        try:
            one(qid, q, "cold-no-prompt-cache")
        finally:
            generator.prompt_cache = cache
        if cache is not None:
            generator.reset()
            one(qid, q, "cold-prompt-cache")
    for _ in range(runs):
        for qid, q in questions:
            s = one(qid, q, "warm")
            if s.error is None:
                gen_records.append(_gen_record(s))
    warm = [s for s in samples if s.phase == "warm"]
    return {
        "cold": {s.phase: asdict(s) for s in samples if s.phase != "warm"},
        "warm": summarize(warm),
        "warm_aggregate": aggregate_ratios(warm, gen_records),
        "errors": [asdict(s) for s in samples if s.error],
        "refused": sum(s.refused for s in warm),
        "answers": len(warm),
        "samples": [asdict(s) for s in samples],
    }


def load_models(assistant: Assistant) -> dict:
    """Load the index and both models before the clock starts; how long each took and the memory after."""
    out = {"rss_mb_start": current_rss_mb()}
    t0 = time.perf_counter()
    assistant.retriever.data
    out["index_load_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    assistant.retriever.embedder.embed(["warm-up"])
    out["embedder_load_s"] = round(time.perf_counter() - t0, 3)
    out["rss_mb_after_embedder"] = current_rss_mb()
    t0 = time.perf_counter()
    assistant.generator.count_tokens("warm-up")
    out["llm_load_s"] = round(time.perf_counter() - t0, 3)
    out["rss_mb_after_llm"] = current_rss_mb()
    return out


def settings_info(assistant: Assistant) -> dict:
    s = assistant.settings
    g = assistant.generator
    return {
        "model": assistant.model_label, "n_ctx": getattr(g, "n_ctx", None), "threads": getattr(g, "n_threads", s.n_threads),
        "n_batch": getattr(g, "n_batch", s.n_batch), "n_ubatch": getattr(g, "n_ubatch", None),
        "flash_attn": getattr(g, "flash_attn", s.flash_attn), "prompt_cache": getattr(g, "prompt_cache", None) is not None,
        "top_k": s.top_k, "chunk_tokens": s.chunk_tokens, "chunk_overlap": s.chunk_overlap,
        "max_answer_tokens": s.max_answer_tokens, "embedder": s.embedder,
    }


def bench(assistant: Assistant, questions: list[tuple[str, str]], runs: int = 1, top_k: int | None = None,
          command: str = "", progress: Callable[[Sample], None] | None = None, load: dict | None = None) -> dict:
    """The whole report for one assistant: load facts, cold and warm numbers, memory, conditions."""
    started = machine_info()
    load = load if load is not None else load_models(assistant)
    t0 = time.perf_counter()
    result = run_bench(assistant, questions, runs=runs, top_k=top_k, progress=progress)
    return {
        "format": 1,
        "command": command,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": started,
        "load_average_end": machine_info()["load_average"],
        "settings": settings_info(assistant),
        "questions": len(questions),
        "runs": runs,
        "load": load,
        "peak_rss_mb": peak_rss_mb(),
        "seconds": round(time.perf_counter() - t0, 1),
        **result,
    }


def bench_markdown(report: dict) -> str:
    s, load = report["settings"], report["load"]
    lines = [
        measured(report) + "  ",
        f"Model {s['model']}, n_ctx {s['n_ctx']}, threads {s['threads']}, n_batch {s['n_batch']}, n_ubatch {s['n_ubatch']}, "
        f"flash attention {fmt(s['flash_attn'])}, prompt cache {fmt(s['prompt_cache'])}, top-k {s['top_k']}, "
        f"chunks {s['chunk_tokens']}/{s['chunk_overlap']} tokens; {report['questions']} questions × {report['runs']} run(s), "
        f"{report['refused']} of {report['answers']} warm answers refused.",
        "",
        "| stage | cold | warm p50 | warm p95 | warm mean |",
        "|---|---:|---:|---:|---:|",
    ]
    cold = report["cold"].get("cold") or {}
    for key, label in METRICS:
        w = report["warm"].get(key, {})
        lines.append(f"| {label} | {fmt(cold.get(key))} | {fmt(w.get('p50'))} | {fmt(w.get('p95'))} | {fmt(w.get('mean'))} |")
    warm = [x for x in report["samples"] if x["phase"] == "warm" and x.get("others_cpu") is not None]
    if warm:
        busy = sum(x["others_cpu"] > CONTENDED for x in warm)
        lines += ["", f"Contention: other processes used a median {100 * report['warm']['others_cpu']['p50']:.0f}% of the CPU "
                      f"during the warm calls; {busy} of {len(warm)} calls ran while they used more than {100 * CONTENDED:.0f}% "
                      "(decode then slows many-fold: llama.cpp's threads wait for each other). Re-run on a quiet machine "
                      "before comparing with the targets."]
    agg = report.get("warm_aggregate") or {}
    if agg:
        lines += ["", "Wrapper against llama.cpp's own counters, all warm calls together (tokens / seconds on each side):", "",
                  "| | wrapper tok/s | llama.cpp tok/s | ratio |", "|---|---:|---:|---:|",
                  f"| prefill | {fmt(agg['prefill_tps_wrapper'])} | {fmt(agg['prefill_tps_llama'])} | {fmt(agg['prefill_ratio'], 3)} |",
                  f"| decode | {fmt(agg['decode_tps_wrapper'])} | {fmt(agg['decode_tps_llama'])} | {fmt(agg['decode_ratio'], 3)} |"]
    variants = [(k, v) for k, v in report["cold"].items() if k != "cold"]
    if variants:
        lines += ["", "First question from an empty KV cache (as in a fresh process), same question:", "",
                  "| case | TTFT visible (s) | prompt tokens prefilled | tokens restored | total (s) |", "|---|---:|---:|---:|---:|"]
        for k, v in [("cold", cold), *variants]:
            restored = f"{v.get('restored_tokens', 0)} ({v.get('restored_from')})" if v.get("restored_from") else "0"
            lines.append(f"| {k} | {fmt(v.get('ttft_s'))} | {fmt(v.get('evaluated_tokens'))} | {restored} | {fmt(v.get('total_s'))} |")
    lines += ["", f"Load: index {fmt(load.get('index_load_s'))} s, embedder {fmt(load.get('embedder_load_s'))} s, "
                  f"LLM {fmt(load.get('llm_load_s'))} s. Memory: {fmt(load.get('rss_mb_after_embedder'), 0)} MB RSS after the embedder, "
                  f"{fmt(load.get('rss_mb_after_llm'), 0)} MB after the LLM, peak {fmt(report['peak_rss_mb'], 0)} MB "
                  "(this process holds the same models as the chat app, without Gradio)."]
    if report["errors"]:
        lines += ["", f"{len(report['errors'])} question(s) failed: " + "; ".join(f"{e['id']}: {e['error']}" for e in report["errors"][:5])]
    return "\n".join(lines) + "\n"


def selected(options: dict) -> bool:
    return True  # the default


def run(job) -> tuple[str, dict, str]:
    assistant = job.assistant()
    load = {"build_s": round(job.build_s, 3), **load_models(assistant)}

    def progress(s: Sample) -> None:
        status = s.error or f"ttft {s.ttft_s:.2f} s, total {s.total_s:.2f} s, {s.evaluated_tokens}/{s.prompt_tokens} prompt tokens prefilled"
        job.say(f"{s.phase:>22} {s.id}: {status}")

    report = bench(assistant, job.questions, runs=job.options["runs"], top_k=job.options["top_k"],
                   command=command_line(), progress=progress, load=load)
    return "bench", report, bench_markdown(report)
