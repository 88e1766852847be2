"""Where answers are lost before the model writes them: for the answerable questions of one split that
have keywords, whether every keyword is in the passages retrieved and in the sentences the model is
shown. Generates nothing: the question translations are replayed from each set's generation cache
(runs/gencache-<set>.jsonl, written by scripts/eval_splits.sh), so run that first.

    .venv/bin/python scripts/context_stats.py dev [--out FILE] [SET ...]
    RAG_TOP_K=8 .venv/bin/python scripts/context_stats.py dev      # any setting, as for rag eval
    PYTHONPATH=<worktree> .venv/bin/python scripts/context_stats.py dev   # another build's retrieval

Compound questions (answered in parts) are left out; sets and indexes as in scripts/eval_splits.sh.
--out appends one line per question (set, id, keywords shown 0/1, sentences shown), to compare runs;
--results LABEL counts the answers of runs/LABEL-<set>-<split> (scripts/eval_splits.sh) that were right
among the questions whose keywords were shown and among the others. --lost prints, for each question
whose keywords are in the passages but not in the sentences shown, the ranked sentences: the first
seven and every one holding a keyword (K), those shown marked S, with their rank and score.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from eval_sets import INDEXES, SETS
from eval_sets import index as index_of
from eval_sets import questions as questions_of

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("split", choices=("dev", "test"))
    ap.add_argument("sets", nargs="*", default=list(SETS))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--results", metavar="LABEL")
    ap.add_argument("--lost", action="store_true")
    ap.add_argument("--indexes", default=INDEXES)
    args = ap.parse_args()
    sys.path.insert(0, os.environ.get("PYTHONPATH", str(ROOT)).split(":")[0])
    os.chdir(ROOT)

    from rag.answer.assistant import build_assistant
    from rag.answer.compound import split_compound
    from rag.config import Settings
    from rag.measure.metrics import contains_keyword
    from rag.measure.replay import GenerationCache
    from rag.retrieval.ranking import rank_sentences
    from rag.text.language import detect_language

    total = [0, 0, 0]
    outcomes: dict[tuple[bool, bool], int] = {}
    for name in args.sets:
        index, questions = index_of(name, args.indexes), questions_of(name)
        cache = Path(f"runs/gencache-{name}.jsonl")
        a = build_assistant(Settings.from_env(index_dir=index))
        a.generator = GenerationCache(a.generator, cache, a.model_label)
        if a.second is not None:  # a build that asks the second model during retrieval replays it too
            a.second = GenerationCache(a.second, cache, a.second.name)
        corpus_lang = a.retriever.data.manifest.language
        n = retrieved = shown = 0
        results = {}
        if args.results:
            run = Path(f"runs/{args.results}-{name}-{args.split}/results.jsonl")
            results = {r["id"]: r for r in map(json.loads, run.read_text(encoding="utf-8").splitlines())}
        for line in questions.read_text(encoding="utf-8").splitlines():
            q = json.loads(line) if line.strip() else {}
            if q.get("split") != args.split or not q.get("answerable", True) or not q.get("keywords"):
                continue
            lang = detect_language(q["question"])
            if len(split_compound(q["question"], lang)) > 1:
                continue
            query, _ = a.search_query(q["question"], lang)
            hits = a.retriever.search(query, a.settings.top_k)
            prompt = a.prompt_for(q["question"], hits, lang, corpus_lang, query)
            def holds(text: str) -> bool:
                return all(contains_keyword(text, k) for k in q["keywords"])
            in_hits = holds(" ".join(h.chunk.text for h in hits))
            in_shown = holds(" ".join(s.text for s in prompt.context))
            n, retrieved, shown = n + 1, retrieved + in_hits, shown + in_shown
            if args.lost and in_hits and not in_shown:
                print(f"== {name} {q['id']} {q['question']} | keywords {q['keywords']}")
                seen = {(s.hit.chunk.source, s.start) for s in prompt.context}
                for i, s in enumerate(rank_sentences(query, hits, corpus_lang, a.relevance)):
                    held = any(contains_keyword(s.text, k) for k in q["keywords"])
                    if i < 7 or held:
                        mark = ("S" if (s.hit.chunk.source, s.start) in seen else " ") + ("K" if held else " ")
                        print(f"  {i:2d} {mark} {s.score:.3f} passage {s.hit.rank} {s.text[:140]!r}")
            if q["id"] in results:
                key = (in_shown, bool(results[q["id"]]["metrics"].get("correct")))
                outcomes[key] = outcomes.get(key, 0) + 1
            if args.out:
                with args.out.open("a", encoding="utf-8") as f:
                    f.write(f"{name} {q['id']} {int(in_shown)} {len(prompt.context)}\n")
        print(f"{name:10s} questions {n:3d}  keywords in the passages {retrieved:3d}  in the sentences shown {shown:3d}")
        total = [total[0] + n, total[1] + retrieved, total[2] + shown]
    print(f"{'all':10s} questions {total[0]:3d}  keywords in the passages {total[1]:3d}  in the sentences shown {total[2]:3d}")
    if args.results:
        for seen in (True, False):
            ok, bad = outcomes.get((seen, True), 0), outcomes.get((seen, False), 0)
            print(f"keywords {'shown' if seen else 'not shown'}: {ok} of {ok + bad} answered right in {args.results}")


if __name__ == "__main__":
    main()
