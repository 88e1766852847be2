"""Load test of `rag serve`'s OpenAI-compatible API: N users, each asking questions one after the
other through the real `openai` client (streamed), for 1, 4, 16... users in turn.

    python scripts/loadtest.py --url http://127.0.0.1:7860/v1 --users 1,4,16 --requests 32 --out runs/load.json

Per user count: answers per second, latency p50/p95 (request sent -> last event), time to first
content p50/p95, and errors by kind (503 busy, timeouts, others). Questions come from a JSONL
question set (`rag eval`'s format), each user starting at another question.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def ask(client, question: str) -> tuple[float, float]:
    """(seconds to the first content, seconds to the end) of one streamed answer."""
    t0 = time.perf_counter()
    first = None
    stream = client.chat.completions.create(model="rag", messages=[{"role": "user", "content": question}], stream=True)
    for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    return first if first is not None else total, total


def run(url: str, key: str, users: int, rounds: int, questions: list[str], timeout: float) -> dict:
    import openai

    latencies, firsts, errors = [], [], {}
    lock = threading.Lock()
    start = threading.Barrier(users)

    def user(n: int) -> None:
        client = openai.OpenAI(base_url=url, api_key=key or "none", timeout=timeout, max_retries=0)
        start.wait()
        for r in range(rounds):
            question = questions[(n * rounds + r) % len(questions)]
            try:
                first, total = ask(client, question)
            except openai.APIStatusError as e:
                kind = f"HTTP {e.status_code}"
            except openai.APITimeoutError:
                kind = "timeout"
            except Exception as e:  # noqa: BLE001 - counted, whatever it is
                kind = type(e).__name__
            else:
                with lock:
                    latencies.append(total)
                    firsts.append(first)
                continue
            with lock:
                errors[kind] = errors.get(kind, 0) + 1

    threads = [threading.Thread(target=user, args=(n,)) for n in range(users)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {
        "users": users, "requests": users * rounds, "ok": len(latencies), "errors": errors, "wall_s": round(wall, 2),
        "answers_per_s": round(len(latencies) / wall, 3),
        "latency_p50_s": round(percentile(latencies, 0.5), 3), "latency_p95_s": round(percentile(latencies, 0.95), 3),
        "first_content_p50_s": round(percentile(firsts, 0.5), 3), "first_content_p95_s": round(percentile(firsts, 0.95), 3),
        "latency_mean_s": round(statistics.fmean(latencies), 3) if latencies else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860/v1", help="the API's /v1 base URL")
    parser.add_argument("--key", default="", help="bearer token (RAG_API_KEY of the server)")
    parser.add_argument("--users", default="1,4,16", help="comma-separated numbers of concurrent users")
    parser.add_argument("--requests", type=int, default=32,
                        help="questions asked at each user count, shared out among the users (each asks them one after the other)")
    parser.add_argument("--questions", default="eval/questions.jsonl", type=Path)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--label", default="", help="a name for this run in the output (backend, machine)")
    parser.add_argument("--out", type=Path, help="append the results to this JSON file")
    args = parser.parse_args()

    questions = [json.loads(line)["question"] for line in args.questions.read_text(encoding="utf-8").splitlines() if line.strip()]
    results = []
    print("| users | requests | ok | errors | answers/s | latency p50 / p95 (s) | first content p50 / p95 (s) |")
    print("|---:|---:|---:|---|---:|---:|---:|")
    for users in (int(u) for u in args.users.split(",")):
        r = run(args.url, args.key, users, max(1, args.requests // users), questions, args.timeout)
        r["label"] = args.label
        results.append(r)
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(r["errors"].items())) or "none"
        print(f"| {users} | {r['requests']} | {r['ok']} | {errors} | {r['answers_per_s']:.2f} | "
              f"{r['latency_p50_s']:.2f} / {r['latency_p95_s']:.2f} | {r['first_content_p50_s']:.2f} / {r['first_content_p95_s']:.2f} |",
              flush=True)
    if args.out:
        old = json.loads(args.out.read_text()) if args.out.exists() else []
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(old + results, indent=1))


if __name__ == "__main__":
    main()
