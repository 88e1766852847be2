"""How often the question's language is detected right, on one split: the held-out question sets
(each question's "lang"), the short questions of eval/lang_questions.jsonl (no split: counted with
dev) and the technical ones of eval/lang_tech_questions.jsonl (command and package names among the
words). Prints right / of per file and each question detected wrong.

    .venv/bin/python scripts/language_scores.py dev|test
    PYTHONPATH=<worktree> .venv/bin/python scripts/language_scores.py dev   # another build's detector
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from eval_sets import SETS
from eval_sets import questions as questions_of

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    split = sys.argv[1] if len(sys.argv) > 1 else "dev"
    sys.path.insert(0, os.environ.get("PYTHONPATH", str(ROOT)).split(":")[0])
    os.chdir(ROOT)
    from rag.text.language import detect_language

    files = [questions_of(name) for name in SETS] + [Path("eval/lang_questions.jsonl"), Path("eval/lang_tech_questions.jsonl")]
    total = right = 0
    for path in files:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        rows = [q for q in rows if q.get("lang") and q.get("split", "dev") == split]
        wrong = [(q["lang"], got, q["question"]) for q in rows if (got := detect_language(q["question"])) != q["lang"]]
        total, right = total + len(rows), right + len(rows) - len(wrong)
        print(f"{str(path):32s} {len(rows) - len(wrong):4d} / {len(rows):4d}")
        for want, got, question in wrong:
            print(f"    {want} -> {got}: {question}")
    print(f"{'all':32s} {right:4d} / {total:4d}")


if __name__ == "__main__":
    main()
