#!/bin/bash
# Retrieval side by side on one split (docs/quality.md, "Cross-lingual retrieval"): the bundled MiniLM
# or multilingual e5, each with query translation off and on, on the four question sets; then the
# table of same-language and cross-lingual questions.
#   scripts/compare_embedders.sh [dev|test]    -> runs/xr/{mini,e5}-t{0,1}-<set>-<split>/
# Needs the MiniLM indexes of scripts/eval_splits.sh (runs/idx7/*, index/) and e5's:
#   for c in python-en debian-de debian-es; do rag index --docs eval/corpora/$c --index runs/idx7e/$c --embedder multilingual-e5-small-q4; done
#   rag index --docs seeds --index runs/idx7e/seeds --embedder multilingual-e5-small-q4
set -u
split=${1:-dev}
cd "$(dirname "$0")/.."
mkdir -p runs/xr
for c in seeds python-en debian-de debian-es; do
  if [ $c = seeds ]; then q=eval/questions.jsonl; mini=index; else q=eval/$c.jsonl; mini=runs/idx7/$c; fi
  for t in 0 1; do
    for e in mini e5; do
      idx=$mini; [ $e = e5 ] && idx=runs/idx7e/$c
      RAG_TRANSLATE_QUERIES=$t .venv/bin/rag eval "$q" --index "$idx" --split "$split" --retrieval-only \
        --out "runs/xr/$e-t$t-$c-$split" > "runs/xr/$e-t$t-$c-$split.log" 2>&1 || echo "$e-t$t-$c-$split failed"
    done
  done
done
.venv/bin/python scripts/crosslingual_retrieval.py runs/xr/*-"$split"
