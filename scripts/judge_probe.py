"""Could the local model itself tell an answer that answers from one that does not? A probe, not part
of the engine: for every question of a `rag eval` run (results.jsonl with the model's raw answers), it
asks the model a yes/no question in a fresh chat and scores the answer by the log-odds of "yes" over
"no" for its next word; then the AUC of that score against whether the raw answer was right, beside
the AUC of today's answer checks (pass all = 1). docs/quality.md, "Fourth round", has the numbers.

  python scripts/judge_probe.py runs/m2-seeds-dev runs/m2-python-en-dev ... [--prompt answer|passages] [--model default]
      [--accepted] [--vetoes -1.0,-0.6]

--accepted judges only the answers today's checks accept (what a veto would act on); --vetoes are the
log-odds a veto is printed for (the 0.5B's scores lie around 0, the 1.5B's around 3).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag.answer.judge import NO, PROMPT, SYSTEM, YES
from rag.config import Settings
from rag.generation.llama import LlamaGenerator
from rag.generation.models import resolve_model

PROMPTS = {
    # the answer alone: does it give what is asked?
    "answer": "Question: {question}\nAnswer: {answer}\nDoes the answer give the specific information the question asks for? yes or no",
    # the passages shown with it: are they saying it, and does it answer? (the engine's judge asks this of a quote)
    "passages": PROMPT,
}


def auc(pos: list[float], neg: list[float]) -> float:
    if not pos or not neg:
        return float("nan")
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--prompt", choices=sorted(PROMPTS), default="passages")
    ap.add_argument("--model", default="default")
    ap.add_argument("--accepted", action="store_true", help="only the answers the checks accept")
    ap.add_argument("--vetoes", default="-1.5,-1.2,-1.0,-0.8,-0.6", help="log-odds thresholds, comma-separated")
    args = ap.parse_args()
    gen = LlamaGenerator(resolve_model(args.model, Settings().cache_dir))
    pooled: list[tuple[float, bool, bool, bool]] = []  # (score, raw answer right, checks accept it, unanswerable)
    for run in args.runs:
        rows = []
        for line in (run / "results.jsonl").read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            m = r["metrics"]
            if r.get("raw_answer") is None or "raw_passed" not in m:
                continue
            if not r["question"]["answerable"] and m["raw_passed"]:
                continue  # the model refused an unanswerable question: nothing to judge
            if args.accepted and m.get("checks_failed"):
                continue
            text = "\n\n".join(h["text"] for h in r["answer"]["retrieved"][:4])[:2400]
            user = PROMPTS[args.prompt].format(question=r["question"]["question"], answer=r["raw_answer"], text=text)
            score = gen.log_odds([{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}], YES, NO)
            rows.append((score, bool(m["raw_passed"]) and r["question"]["answerable"], not m.get("checks_failed"),
                         not r["question"]["answerable"]))
        report(run.name, rows)
        pooled += rows
    report("all", pooled)
    # The judge as a veto on what the checks accept: wrong answers it would turn down, and right ones.
    accepted = [(s, ok, u) for s, ok, c, u in pooled if c]
    for t in (float(v) for v in args.vetoes.split(",")):
        print(f"veto below {t}: {sum(1 for s, ok, _ in accepted if s < t and not ok)} wrong "
              f"({sum(1 for s, _, u in accepted if s < t and u)} to unanswerable questions), "
              f"{sum(1 for s, ok, _ in accepted if s < t and ok)} right of {len(accepted)} accepted")


def report(name: str, rows: list[tuple[float, bool, bool, bool]]) -> None:
    right = [s for s, ok, *_ in rows if ok]
    wrong = [s for s, ok, *_ in rows if not ok]
    checks = auc([float(c) for _, ok, c, _ in rows if ok], [float(c) for _, ok, c, _ in rows if not ok])
    accepted = auc([s for s, ok, c, _ in rows if ok and c], [s for s, ok, c, _ in rows if not ok and c])
    print(f"{name}: {len(right)} right, {len(wrong)} wrong raw answers; AUC judge {auc(right, wrong):.2f}, "
          f"checks {checks:.2f}; among answers the checks accept: judge {accepted:.2f}")


if __name__ == "__main__":
    main()
