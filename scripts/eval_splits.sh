#!/bin/bash
# One `rag eval` per question set (seeds, python-en, debian-de, debian-es, debian-it) on one split, each with its
# own generation cache, so a second run with other answer code (RAG_CHECKS, RAG_TRANSLATE_QUOTES,
# PYTHONPATH=<worktree>) replays the model's replies and differs only in that code (docs/quality.md).
#   scripts/eval_splits.sh LABEL [dev|test]    -> runs/LABEL-<set>-<split>/
# Needs the held-out indexes: for c in python-en debian-de debian-es debian-it; do rag index --docs eval/corpora/$c --index runs/idx14/$c; done
# INDEXES=runs/idx-other reads them (and seeds/'s, if there) from another folder, e.g. built with another embedder.
set -u
label=$1; split=${2:-dev}
cd "$(dirname "$0")/.."
# The sets, their questions and indexes: scripts/eval_sets.py (INDEXES, default runs/idx14).
python3 scripts/eval_sets.py | while read -r s q idx; do
  RAG_EVAL_CACHE=runs/gencache-$s.jsonl .venv/bin/rag eval "$q" --index "$idx" --split "$split" \
    --out "runs/$label-$s-$split" > "runs/$label-$s-$split.log" 2>&1 < /dev/null
  echo "$s rc=$?"
done
