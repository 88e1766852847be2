"""`rag bench --cold`: whole `rag ask` processes, as a user runs them once -> OUT/cold.json, OUT/cold.md.

Each of N fresh processes asks one question with --json; the process is timed from outside (wall
clock from start to exit; its CPU time and peak RSS from the kernel's accounting of that child) and
reports from inside where its start-up went (timings.startup, on a clock whose zero is the process
start: imports, index, language, embedder, model load, first token). Medians are what to quote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from rag.errors import RagError
from rag.measure.bench.common import cpu_times, fmt, measured, percentile

OPTIONS = [
    click.option("--cold", is_flag=True,
                 help="Time whole `rag ask --json` processes instead, one question each: wall, first token, CPU, peak RSS, start-up stages."),
    click.option("--processes", type=click.IntRange(1, 100), default=5, show_default=True,
                 help="Fresh processes for --cold (they take the questions in turn)."),
    click.option("--question", "cold_question", help="With --cold: ask this question in every process instead of the file's."),
]

# (key in a process record, label): the per-stage breakdown of the report.
STAGES = [
    ("imports_s", "interpreter and imports (moment, s)"),
    ("index_load_s", "index load (s)"),
    ("language_s", "language detection (s)"),
    ("embedder_load_s", "embedder load and query embedding (s)"),
    ("model_load_s", "model load and prompt cache, beside the above (s)"),
    ("retrieval_s", "retrieval (s)"),
    ("prefill_s", "prefill, llama.cpp (s)"),
    ("decode_s", "decode, llama.cpp (s)"),
]
TOTALS = [
    ("wall_s", "wall, start to exit (s)"),
    ("first_token_s", "first token from process start (s)"),
    ("cpu_s", "CPU, user + system (s)"),
    ("peak_rss_mb", "peak RSS (MB)"),
]


def ask_command(question: str, index_dir: Path | None, model: str | None, top_k: int | None) -> list[str]:
    """The `rag ask --json` a user runs: the console script beside this interpreter, else the module."""
    script = Path(sys.executable).with_name("rag")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "rag.apps.cli"]
    cmd += ["ask", question, "--json"]
    if index_dir:
        cmd += ["--index", str(index_dir)]
    if model:
        cmd += ["--model", model]
    if top_k is not None:
        cmd += ["--top-k", str(top_k)]
    return cmd


def run_process(cmd: list[str], timeout: float = 600.0) -> dict:
    """One process: wall time, CPU time and peak RSS of exactly that child (wait4), and what it printed."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise RagError(f"`{' '.join(cmd[:3])} …` ran over {timeout:.0f} s; raise --timeout or check the machine")
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        last = (stderr.strip().splitlines() or ["(nothing on stderr)"])[-1]
        raise RagError(f"`rag ask` exited with status {proc.returncode}: {last}")
    try:
        answer = json.loads(stdout)
    except ValueError:
        raise RagError(f"`rag ask --json` printed no JSON object (starts {stdout[:80]!r}); run it by hand to see why") from None
    return {"wall_s": round(wall, 4), "cpu_s": round(usage.ru_utime + usage.ru_stime, 4),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), **stages_of(answer)}


def stages_of(answer: dict) -> dict:
    """The start-up stages and totals one `rag ask --json` object reports (None where it has none)."""
    t = answer.get("timings") or {}
    startup = t.get("startup") or {}
    llama = t.get("llama") or {}

    def seconds(ms):
        return round(ms / 1000, 4) if isinstance(ms, (int, float)) else None

    return {
        "first_token_s": startup.get("first_token_s"),
        "imports_s": startup.get("imports_s"),
        "index_load_s": startup.get("index_load_s"),
        "language_s": startup.get("language_s"),
        "embedder_load_s": startup.get("embedder_load_s"),
        "model_load_s": startup.get("model_load_s"),
        "retrieval_s": seconds(t.get("retrieval_ms")),
        "prefill_s": seconds(llama.get("prompt_eval_ms")),
        "decode_s": seconds(llama.get("eval_ms")),
        "prompt_tokens": t.get("prompt_tokens"),
        "completion_tokens": t.get("completion_tokens"),
        "answer": answer.get("answer"),
    }


def summarize(samples: list[dict]) -> dict:
    """Median, min and max of every measured figure over the processes."""
    out = {}
    for key, _ in (*TOTALS, *STAGES):
        values = [s[key] for s in samples if isinstance(s.get(key), (int, float))]
        out[key] = {"p50": percentile(values, 50), "min": min(values) if values else None,
                    "max": max(values) if values else None, "n": len(values)}
    return out


def measure(commands: list[list[str]], progress=None) -> dict:
    """Run the commands one after another; their samples, summary and the CPU other processes took."""
    say = progress or (lambda _: None)
    before, children_before = cpu_times(), os.times()
    samples = []
    for i, cmd in enumerate(commands, start=1):
        samples.append(run_process(cmd))
        s = samples[-1]
        say(f"process {i}/{len(commands)}: wall {fmt(s['wall_s'])} s, first token {fmt(s['first_token_s'])} s, "
            f"CPU {fmt(s['cpu_s'])} s, peak {fmt(s['peak_rss_mb'], 0)} MB")
    after, children_after = cpu_times(), os.times()
    busy, total = after[0] - before[0], after[1] - before[1]
    ours = (after[2] - before[2]) + (children_after.children_user - children_before.children_user
                                     + children_after.children_system - children_before.children_system)
    others = round(min(max((busy - ours) / total, 0.0), 1.0), 3) if total > 0 else None
    return {"processes": len(samples), "summary": summarize(samples), "samples": samples, "others_cpu_share": others}


def cold_markdown(report: dict) -> str:
    c = report["cold"]
    lines = [measured(report) + " "
             f"Other processes took {fmt((c['others_cpu_share'] or 0) * 100, 0)}% "
             f"of the CPU meanwhile. {c['processes']} fresh `rag ask --json` processes, one question each.",
             "", "| whole process | median | min | max |", "|---|---:|---:|---:|"]
    for rows in (TOTALS, STAGES):
        for key, label in rows:
            v = c["summary"][key]
            digits = 0 if key == "peak_rss_mb" else 3 if key in ("language_s", "retrieval_s") else 2
            label = f"**{label}**" if rows is TOTALS else label
            lines.append(f"| {label} | {fmt(v['p50'], digits)} | {fmt(v['min'], digits)} | {fmt(v['max'], digits)} |")
        if rows is TOTALS:
            lines.append("| *start-up stages, from inside the process* | | | |")
    return "\n".join(lines) + "\n"


def selected(options: dict) -> bool:
    return options["cold"]


def run(job) -> tuple[str, dict, str]:
    o = job.options
    questions = [o["cold_question"]] if o["cold_question"] else [q for _, q in job.questions]
    commands = [ask_command(questions[i % len(questions)], o["index_dir"], o["model"], o["top_k"]) for i in range(o["processes"])]
    report = {**job.header(), "cold": measure(commands, progress=job.say)}
    return "cold", report, cold_markdown(report)
