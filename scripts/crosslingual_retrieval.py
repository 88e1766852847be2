"""Retrieval of `rag eval` runs split by question kind: asked in the documents' language, or in another
(cross-lingual). Answerable questions only; hit = a gold file among the passages, support = the
reference answer's keywords in them (the passages the model sees hold the answer).

  python scripts/crosslingual_retrieval.py runs/xr/*-dev
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rates(metrics: list[dict]) -> str:
    def mean(key: str) -> float:
        values = [m[key] for m in metrics if m.get(key) is not None]
        return sum(values) / len(values) if values else float("nan")
    return f"{len(metrics)} | {mean('hit'):.3f} | {mean('rr'):.3f} | {mean('support'):.3f}"


def main(runs: list[Path]) -> None:
    print("| run | same-language n | hit@k | MRR | support@k | cross-lingual n | hit@k | MRR | support@k |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        language = json.loads((run / "summary.json").read_text(encoding="utf-8"))["index"]["language"]
        same, cross = [], []
        for line in (run / "results.jsonl").read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if r["question"]["answerable"]:
                (cross if r["question"]["lang"] != language else same).append(r["metrics"])
        print(f"| {run.name} | {rates(same)} | {rates(cross)} |")


if __name__ == "__main__":
    main([Path(p) for p in sys.argv[1:]])
