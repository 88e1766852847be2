"""The question sets the held-out runs cover, in one place: each one's questions and index, for
scripts/eval_splits.sh, split_scores.py and context_stats.py.

    python scripts/eval_sets.py [INDEXES]   # one line per set: name, questions file, index folder
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SETS = ("seeds", "python-en", "debian-de", "debian-es", "debian-it")
# The held-out indexes (rag index --docs eval/corpora/<set> --index runs/idx14/<set>); seeds/'s is index/
# unless the folder has its own copy.
INDEXES = os.environ.get("INDEXES", "runs/idx14")


def questions(name: str) -> Path:
    return Path("eval/questions.jsonl") if name == "seeds" else Path(f"eval/{name}.jsonl")


def index(name: str, indexes: str = INDEXES) -> Path:
    own = Path(indexes) / name
    return own if name != "seeds" or own.is_dir() else Path("index")


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parent.parent)
    for name in SETS:
        print(name, questions(name), index(name, sys.argv[1] if len(sys.argv) > 1 else INDEXES))
