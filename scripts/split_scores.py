"""The score docs/quality.md compares runs by: answerable questions answered right plus unanswerable
ones refused, over the four sets of scripts/eval_splits.sh, with the model's own answers ("direct").

    python scripts/split_scores.py dev b0 w1          # one line per run label: runs/<label>-<set>-dev
    python scripts/split_scores.py dev b0 w1 --flips  # and every question whose answer changed from the first to each other

Each other run is also compared with the first question by question: how many it made right and
wrong, and the two-sided sign test's p-value of that split (McNemar's exact test): the chance of a
split at least that uneven if a change made answers right and wrong alike. A perturbation that only
moves every embedding a little made 2 right and 4 wrong on dev (p 0.69; docs/quality.md, thirteenth
round): a score a few answers apart is no evidence either way.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from eval_sets import SETS

ROOT = Path(__file__).resolve().parent.parent


def load(label: str, name: str, split: str) -> dict[str, dict] | None:
    path = ROOT / "runs" / f"{label}-{name}-{split}" / "results.jsonl"
    if not path.is_file():
        return None
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return {r["id"]: r for r in rows}


def right(r: dict) -> bool:
    m = r["metrics"]
    return bool(m.get("correct")) if r["question"]["answerable"] else bool(m.get("refused"))


def summary(label: str, split: str) -> str:
    score = direct = 0
    parts = []
    for name in SETS:
        rows = load(label, name, split)
        if rows is None:
            parts.append(f"{name} -")
            continue
        answerable = [r for r in rows.values() if r["question"]["answerable"]]
        ok = sum(right(r) for r in answerable)
        refused = sum(right(r) for r in rows.values() if not r["question"]["answerable"])
        own = sum(r["metrics"].get("outcome") == "direct" for r in answerable)
        score, direct = score + ok + refused, direct + own
        parts.append(f"{name} {ok}/{len(answerable)} +{refused}/{len(rows) - len(answerable)} direct {own}")
    return f"{label:12s} score {score:3d}  direct {direct:3d} | " + " | ".join(parts)


def sign_test(made_right: int, made_wrong: int) -> float:
    """Two-sided exact p-value of made_right against made_wrong under even odds (1.0 with no flips)."""
    n, k = made_right + made_wrong, min(made_right, made_wrong)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0


def pairs(a: str, b: str, split: str):
    """(set, question id, a's result, b's result) for every question both runs answered."""
    for name in SETS:
        before, after = load(a, name, split), load(b, name, split)
        if before is None or after is None:
            continue
        for qid, x in before.items():
            if (y := after.get(qid)) is not None:
                yield name, qid, x, y


def paired(a: str, b: str, split: str) -> str:
    """How many questions b made right and wrong against a, and the sign test's p-value."""
    made_right = made_wrong = 0
    for _, _, x, y in pairs(a, b, split):
        if right(x) != right(y):
            made_right, made_wrong = made_right + right(y), made_wrong + right(x)
    return f"{b:12s} against {a}: {made_right} made right, {made_wrong} made wrong, sign test p = {sign_test(made_right, made_wrong):.2f}"


def flips(a: str, b: str, split: str) -> None:
    for name, qid, x, y in pairs(a, b, split):
        if (x["answer"] or {}).get("answer") == (y["answer"] or {}).get("answer"):
            continue
        tag = "made right" if right(y) and not right(x) else "made wrong" if right(x) and not right(y) else "as before"
        print(f"{name} {qid} {tag} ({x['metrics'].get('outcome')} -> {y['metrics'].get('outcome')}): {x['question']['question'][:80]}")
        print(f"    {a}: {(x['answer'] or {}).get('answer', '')[:160]!r}")
        print(f"    {b}: {(y['answer'] or {}).get('answer', '')[:160]!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("split", choices=("dev", "test"))
    ap.add_argument("labels", nargs="+")
    ap.add_argument("--flips", action="store_true")
    args = ap.parse_args()
    for label in args.labels:
        print(summary(label, args.split))
    for other in args.labels[1:]:
        print(paired(args.labels[0], other, args.split))
    if args.flips:
        for other in args.labels[1:]:
            flips(args.labels[0], other, args.split)


if __name__ == "__main__":
    main()
