"""`rag bench --sweep`: prefill and decode speed of the model alone for thread counts, batch sizes and
flash attention, to choose the defaults in rag/config.py -> OUT/sweep.json and OUT/sweep.md."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import click
import numpy as np

from rag.answer.assistant import Assistant
from rag.errors import InputError
from rag.measure.bench.common import cpu_times, fmt, machine_info, measured, others_share

SWEEP_DEFAULT = "threads=1,2;n_batch=512;flash_attn=0,1"
DECODE_TOKENS = 48
REPEATS = 3

OPTIONS = [
    click.option("--sweep", is_flag=True, help="Time the model alone for each llama.cpp setting in --grid instead."),
    click.option("--grid", default=SWEEP_DEFAULT, show_default=True,
                 help="Settings for --sweep: KEY=V1,V2;… (threads, n_batch, n_ubatch, flash_attn)."),
]


def parse_grid(spec: str) -> list[dict]:
    """"threads=1,2;n_batch=128,512" -> every combination as a dict."""
    axes: list[tuple[str, list[int]]] = []
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        key, _, values = part.partition("=")
        key = key.strip()
        if key not in {"threads", "n_batch", "n_ubatch", "flash_attn"} or not values:
            raise InputError(f"--grid part {part!r} is not KEY=V1,V2 with KEY one of threads, n_batch, n_ubatch, flash_attn")
        try:
            axes.append((key, [int(v) for v in values.split(",")]))
        except ValueError:
            raise InputError(f"--grid values in {part!r} must be integers") from None
    combos = [{}]
    for key, values in axes:
        combos = [{**c, key: v} for c in combos for v in values]
    return combos


class _PromptCapture:
    """Stands in for the generator for one call: records the engine's messages, answers nothing."""

    def __init__(self, inner):
        self.inner = inner
        self.messages: list[dict] | None = None

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def stream(self, messages: list[dict], max_tokens: int, temperature: float = 0.0):
        self.messages = messages
        return iter(())


def sweep_prompt_tokens(assistant: Assistant, question: str) -> tuple[list[int], int]:
    """The engine's real prompt for a question (as `rag ask` builds it) and its stable prefix length."""
    g = assistant.generator
    capture = _PromptCapture(g)
    assistant.generator = capture
    try:
        assistant.ask(question)
    finally:
        assistant.generator = g
    if capture.messages is None:
        raise InputError(f"the engine built no prompt for {question!r} (nothing retrieved); pick another question")
    tokens = g.render(capture.messages)
    return tokens, len(g.stable_prefix(capture.messages, tokens))


def run_sweep(model_path: Path, tokens: list[int], prefix_len: int, grid: list[dict], repeats: int = REPEATS, decode_tokens: int = DECODE_TOKENS,
          n_ctx: int = 4096, progress: Callable[[dict], None] | None = None) -> list[dict]:
    """For each setting: prefill of the prompt after its stable prefix (what a warm question pays)
    and greedy decode, from llama.cpp's own counters; best of `repeats` to resist a shared machine."""
    from rag.generation.llama_adapter import LlamaModel

    rows = []
    for combo in grid:
        threads = combo.get("threads", os.cpu_count() or 1)
        n_batch = combo.get("n_batch", 512)
        n_ubatch = combo.get("n_ubatch", n_batch)
        flash = bool(combo.get("flash_attn", 1))
        model = LlamaModel.load(model_path, n_ctx=n_ctx, n_threads=threads, n_batch=n_batch, n_ubatch=n_ubatch, flash_attn=flash)
        prefills, decodes = [], []
        cpu0 = cpu_times()
        for _ in range(repeats):
            model.clear()
            model.evaluate(tokens[:prefix_len])
            model.perf_reset()
            model.evaluate(tokens[prefix_len:])
            perf = model.perf()
            prefills.append(perf.prompt_tokens / perf.prompt_ms * 1000)
            model.perf_reset()
            # The engine's own greedy decode: an argmax over the logits, then one token evaluated.
            for _ in range(decode_tokens):
                model.evaluate([model.greedy_token()])
            perf = model.perf()
            decodes.append(perf.eval_tokens / perf.eval_ms * 1000)
        row = {"threads": threads, "n_batch": n_batch, "n_ubatch": min(n_ubatch, n_batch), "flash_attn": flash,
               "prefill_tokens": len(tokens) - prefix_len, "prefill_tps_best": round(max(prefills), 1),
               "prefill_tps_median": round(float(np.median(prefills)), 1), "decode_tps_best": round(max(decodes), 1),
               "decode_tps_median": round(float(np.median(decodes)), 1), "others_cpu": others_share(cpu0, cpu_times())}
        model.close()
        rows.append(row)
        if progress:
            progress(row)
    return rows


def sweep_markdown(report: dict) -> str:
    lines = [measured(report) + f" Prefill: the {report['prefill_tokens']} prompt tokens after the "
             f"{report['prefix_tokens']}-token stable prefix of a real question; decode: {report['decode_tokens']} greedy tokens; "
             f"llama.cpp's own counters, best and median of {report['repeats']}.", "",
             "| threads | n_batch | n_ubatch | flash attn | prefill tok/s best | median | decode tok/s best | median | CPU used by others |",
             "|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        others = f"{100 * r['others_cpu']:.0f}%" if r.get("others_cpu") is not None else "–"
        lines.append(f"| {r['threads']} | {r['n_batch']} | {r['n_ubatch']} | {fmt(r['flash_attn'])} | {r['prefill_tps_best']} | "
                     f"{r['prefill_tps_median']} | {r['decode_tps_best']} | {r['decode_tps_median']} | {others} |")
    return "\n".join(lines) + "\n"


def selected(options: dict) -> bool:
    return options["sweep"]


def run(job) -> tuple[str, dict, str]:
    combos = parse_grid(job.options["grid"])  # a bad grid is an error before any model loads
    assistant = job.assistant()
    assistant.retriever.data
    tokens, prefix_len = sweep_prompt_tokens(assistant, job.questions[0][1])
    rows = run_sweep(assistant.generator.model_path, tokens, prefix_len, combos, n_ctx=assistant.settings.n_ctx,
                     progress=lambda r: job.say(json.dumps(r)))
    report = {**job.header(), "rows": rows, "prefill_tokens": len(tokens) - prefix_len, "prefix_tokens": prefix_len,
              "decode_tokens": DECODE_TOKENS, "repeats": REPEATS, "load_average_end": machine_info()["load_average"]}
    return "sweep", report, sweep_markdown(report)
