"""`rag bench --app`: the chat app's own memory. Starts `rag serve` on a free loopback port, asks the
questions through its API as the web page does, and reads the server's peak RSS from /proc
-> OUT/app.json and OUT/app.md."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable

import click

from rag.measure.bench.common import fmt, measured, percentile
from rag.servers import free_port, running

OPTIONS = [click.option("--app", "app_rss", is_flag=True,
                        help="Measure the chat app instead: start `rag serve`, ask through its API, read its peak RSS.")]

def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS), RssAnon, RssFile of a process, in MB."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in {"VmRSS", "VmHWM", "RssAnon", "RssFile"}:
                out[key] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return out


def measure_app(questions: list[tuple[str, str]], index_dir: Path | None, model: str | None, timeout: float = 300.0,
                progress: Callable[[str], None] | None = None) -> dict:
    """Start `rag serve` on a free local port, ask the questions through its API (as the web page
    does), and read the server's own peak RSS from /proc: the chat app's memory, measured on the app."""
    from gradio_client import Client

    say = progress or (lambda _: None)
    port = free_port()
    cmd = [str(Path(sys.executable).with_name("rag")), "serve", "--port", str(port)]
    if index_dir:
        cmd += ["--index", str(index_dir)]
    if model:
        cmd += ["--model", model]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()

    def connect():  # a Client once the app answers; it raises until then
        return Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False, analytics_enabled=False)

    with running(cmd, connect, name="`rag serve`", env=env, ready_s=timeout, poll_s=0.5) as (server, client):
        ready_s = time.perf_counter() - t0
        say(f"app ready after {ready_s:.1f} s; RSS {_proc_status(server.pid).get('VmRSS')} MB")
        latencies = []
        for qid, q in questions:
            t1 = time.perf_counter()
            client.predict(q, api_name="/ask")
            latencies.append(time.perf_counter() - t1)
            say(f"{qid}: {latencies[-1]:.2f} s through the API; RSS {_proc_status(server.pid).get('VmRSS')} MB")
        status = _proc_status(server.pid)
    return {"ready_s": round(ready_s, 1), "questions": len(questions), "api_latency_s_p50": percentile(latencies, 50),
            "api_latency_s_p95": percentile(latencies, 95), "peak_rss_mb": status.get("VmHWM"), "rss_mb": status.get("VmRSS"),
            "rss_anon_mb": status.get("RssAnon"), "rss_file_mb": status.get("RssFile")}


def app_markdown(report: dict) -> str:
    a = report["app"]
    return (measured(report) + " "
            f"`rag serve` started, ready in {fmt(a['ready_s'], 1)} s, then {a['questions']} questions through its `/ask` API "
            f"(p50 {fmt(a['api_latency_s_p50'])} s, p95 {fmt(a['api_latency_s_p95'])} s each).\n\n"
            f"| chat app process | MB |\n|---|---:|\n| **peak RSS (VmHWM)** | **{fmt(a['peak_rss_mb'], 0)}** |\n"
            f"| RSS at the end | {fmt(a['rss_mb'], 0)} |\n| of which anonymous | {fmt(a['rss_anon_mb'], 0)} |\n"
            f"| of which file-backed (libraries and other mapped files) | {fmt(a['rss_file_mb'], 0)} |\n")


def selected(options: dict) -> bool:
    return options["app_rss"]


def run(job) -> tuple[str, dict, str]:
    report = {**job.header(), "app": measure_app(job.questions, job.options["index_dir"], job.options["model"], progress=job.say)}
    return "app", report, app_markdown(report)
