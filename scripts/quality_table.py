"""Markdown tables from `rag eval` run folders, for the README and docs/quality.md.

    python scripts/quality_table.py runs/a/ runs/b/ ...            # one row per run: what users get
    python scripts/quality_table.py --ablation runs/a/ runs/b/ ...  # per check: right/wrong in each run

Cross-lingual accuracy is over the answerable questions asked in another language than the
index's (summary.json's index.language); same-language over the others.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def load(run: Path) -> tuple[dict, list[dict]]:
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    records = [json.loads(x) for x in (run / "results.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    return summary, records


def share(values: list[bool]) -> str:
    return f"{sum(values) / len(values):.2f} ({sum(values)}/{len(values)})" if values else "–"


def fmt(v) -> str:
    return f"{v:.2f}" if isinstance(v, (int, float)) else "–"


def outcome_row(run: Path) -> str:
    s, records = load(run)
    corpus = (s.get("index") or {}).get("language")
    answerable = [r for r in records if r["question"]["answerable"]]
    cross = [bool(r["metrics"].get("correct")) for r in answerable if r["question"].get("lang") and r["question"]["lang"] != corpus]
    same = [bool(r["metrics"].get("correct")) for r in answerable if not r["question"].get("lang") or r["question"]["lang"] == corpus]
    name = Path(s.get("questions_file", "?")).stem
    split = sorted({r["question"].get("split") or "?" for r in records})
    langs = ", ".join(sorted({r["question"].get("lang") or "?" for r in records}))
    return (f"| {name} ({corpus}) | {'/'.join(split)} | {s['n']} ({langs}) | {fmt(s.get('answer_accuracy'))} | "
            f"{fmt(s.get('refusal_rate_unanswerable'))} | {fmt(s.get('citation_precision'))} | "
            f"{fmt(s.get('direct_answer_rate'))} / {fmt(s.get('quote_rate'))} / {fmt(s.get('refusal_rate'))} | "
            f"{fmt(s.get('second_answer_rate'))} | {fmt(s.get('language_match'))} | {share(same)} | {share(cross)} |")


OUTCOME_HEADER = ("| set (documents' language) | split | questions (languages) | answer accuracy | refusals on unanswerable | "
                  "citation precision | direct / quote / refusal | second model's answers (of answerable) | language match | same-language accuracy | "
                  "cross-lingual accuracy |\n"
                  "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|")


def ablation_table(runs: list[Path]) -> str:
    loaded = [load(r)[0] for r in runs]
    names = [Path(s.get("questions_file", "?")).stem for s in loaded]
    checks = sorted({c for s in loaded for c in (s.get("ablation") or {})})
    lines = ["| check | " + " | ".join(f"{n} right / wrong" for n in names) + " | sum right / wrong |",
             "|---|" + "---:|" * (len(names) + 1)]
    for c in checks:
        cells, right, wrong = [], 0, 0
        for s in loaded:
            a = (s.get("ablation") or {}).get(c, {"made_right": 0, "made_wrong": 0, "decided": 0})
            right, wrong = right + a["made_right"], wrong + a["made_wrong"]
            cells.append(f"{a['made_right']} / {a['made_wrong']}")
        lines.append(f"| {c} | " + " | ".join(cells) + f" | {right} / {wrong} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="rag eval --out folders")
    ap.add_argument("--ablation", action="store_true", help="what each answer check made right and wrong")
    args = ap.parse_args(argv)
    missing = [r for r in args.runs if not (r / "summary.json").is_file()]
    if missing:
        print(f"error: {missing[0]} is no rag eval run (no summary.json); pass --out folders of rag eval", file=sys.stderr)
        return 2
    if args.ablation:
        print(ablation_table(args.runs))
    else:
        print(OUTCOME_HEADER)
        for r in args.runs:
            print(outcome_row(r))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
