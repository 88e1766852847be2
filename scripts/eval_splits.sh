#!/bin/bash
# One `rag eval` per question set (seeds, python-en, debian-de, debian-es) on one split, each with its
# own generation cache, so a second run with other answer code (RAG_CHECKS, RAG_TRANSLATE_QUOTES,
# PYTHONPATH=<worktree>) replays the model's replies and differs only in that code (docs/quality.md).
#   scripts/eval_splits.sh LABEL [dev|test]    -> runs/LABEL-<set>-<split>/
# Needs the held-out indexes: for c in python-en debian-de debian-es; do rag index --docs eval/corpora/$c --index runs/idx9/$c; done
# INDEXES=runs/idx-other reads them (and seeds/'s, if there) from another folder, e.g. built with another embedder.
set -u
label=$1; split=${2:-dev}; indexes=${INDEXES:-runs/idx9}
cd "$(dirname "$0")/.."
for s in seeds python-en debian-de debian-es; do
  if [ "$s" = seeds ]; then q=eval/questions.jsonl; idx=index; [ -d "$indexes/seeds" ] && idx=$indexes/seeds
  else q=eval/$s.jsonl; idx=$indexes/$s; fi
  RAG_EVAL_CACHE=runs/gencache-$s.jsonl .venv/bin/rag eval "$q" --index "$idx" --split "$split" \
    --out "runs/$label-$s-$split" > "runs/$label-$s-$split.log" 2>&1
  echo "$s rc=$?"
done
