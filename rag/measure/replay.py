"""The model's replies as an eval run sees them: its raw text kept (RawRecorder), and replayed from a
cache when the prompt is one it was already given (GenerationCache, RAG_EVAL_CACHE)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator

from rag.generation.prompts import SYSTEM_PROMPT


class RawRecorder:
    """Wraps the generator to keep the model's raw text: the engine removes invalid [n] markers
    before the user sees them, so citation validity must be measured on what the model wrote."""

    def __init__(self, inner):
        self.inner = inner
        self.raw: str | None = None

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def stream(self, messages: list[dict], max_tokens: int, temperature: float = 0.0) -> Iterator[str]:
        # Only the answer: a quote's translation, made after it (rag.answer.translate), is not what the model answered.
        answering = bool(messages) and messages[0].get("content") == SYSTEM_PROMPT
        if answering:
            self.raw = ""
        for piece in self.inner.stream(messages, max_tokens, temperature):
            if answering:
                self.raw += piece
            yield piece


class GenerationCache:
    """Replays the model's reply to a prompt it was already given (RAG_EVAL_CACHE=FILE, a JSONL file):
    at temperature 0 the reply is a function of the messages, so a run after a change to the answer
    checks regenerates only the questions whose prompt changed. Its times are then no measurement."""

    def __init__(self, inner, path: Path, label: str):
        self.inner, self.path, self.label = inner, Path(path), label
        self.replies: dict[str, str] = {}
        self.odds: dict[str, float] = {}  # the judge's scores (rag.answer.judge), a function of the messages too
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    if "odds" in row:
                        self.odds[row["key"]] = row["odds"]
                    else:
                        self.replies[row["key"]] = row["reply"]

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def key(self, messages: list[dict], max_tokens: int, temperature: float) -> str:
        blob = json.dumps([self.label, messages, max_tokens, temperature], ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def stream(self, messages: list[dict], max_tokens: int, temperature: float = 0.0) -> Iterator[str]:
        key = self.key(messages, max_tokens, temperature)
        if temperature == 0 and key in self.replies:
            yield self.replies[key]
            return
        reply = ""
        for piece in self.inner.stream(messages, max_tokens, temperature):
            reply += piece
            yield piece
        if temperature == 0:
            self.replies[key] = reply
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "reply": reply}, ensure_ascii=False) + "\n")

    def log_odds(self, messages: list[dict], yes, no) -> float:
        key = self.key([*messages, {"log_odds": [list(yes), list(no)]}], 0, 0.0)
        if key not in self.odds:
            self.odds[key] = self.inner.log_odds(messages, yes, no)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "odds": self.odds[key]}) + "\n")
        return self.odds[key]
