"""Prompt lookup (rag.generation.lookup) against plain greedy decoding, paired question by question.

    python scripts/compare_lookup.py eval/questions.jsonl --configs 0,8:3:4,4:2:3 --split dev
    RAG_MODEL=quality python scripts/compare_lookup.py eval/questions.jsonl --configs 0,8:3:4,4:3:4 --split dev

Each question is answered once under every configuration, the order rotating from one question to
the next so that no configuration always runs first; a configuration is "0" (a token at a time) or
"guesses:min_ngram:max_ngram". Prints decode tokens/s, generation time and how many final answers
differ from the first configuration's (batched evaluation rounds differently, so a near tie can flip).
Run it on a quiet machine: under contention a batch costs relatively less and guessing looks better.
"""

from __future__ import annotations

import argparse
import json
from functools import partial

from rag.answer.assistant import build_assistant
from rag.config import Settings
from rag.generation.lookup import prompt_lookup


def drafter(config: str):
    """The generator's guesser for one configuration (None: a token at a time)."""
    if config == "0":
        return None
    tokens, low, high = (int(x) for x in config.split(":"))
    return partial(prompt_lookup, max_tokens=tokens, min_ngram=low, max_ngram=high)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("questions")
    ap.add_argument("--configs", default="0,8:3:4")
    ap.add_argument("--split", choices=("dev", "test"))
    args = ap.parse_args()
    questions = [json.loads(line) for line in open(args.questions, encoding="utf-8") if line.strip()]
    questions = [q for q in questions if not args.split or q.get("split") == args.split]
    configs = args.configs.split(",")
    assistant = build_assistant(Settings.from_env())
    generator = assistant.generator
    assistant.ask(questions[0]["question"])  # loads the models and warms the prompt cache
    rows = []
    for i, q in enumerate(questions):
        k = i % len(configs)
        row = {}
        for config in configs[k:] + configs[:k]:
            generator.draft = drafter(config)
            answer = assistant.ask(q["question"])
            stats = generator.last_stats
            row[config] = (answer.text, stats.decode_s, stats.completion_tokens, stats.total_s)
        rows.append(row)
    for config in configs:
        decode = sum(r[config][1] for r in rows)
        tokens = sum(r[config][2] for r in rows)
        total = sum(r[config][3] for r in rows)
        differ = sum(1 for r in rows if r[config][0] != r[configs[0]][0])
        print(f"lookup {config}: decode {decode:.2f} s for {tokens} tokens = {tokens / decode:.1f} tok/s; "
              f"generation {total:.2f} s; answers differing from {configs[0]}: {differ} of {len(rows)}")


if __name__ == "__main__":
    main()
