"""Citation markers: keep only [n] that name a passage of the prompt, resolve them to file spans,
and attribute uncited sentences to the passage that supports them."""

from __future__ import annotations

import re

from rag.generation.prompts import REFUSAL_SENTINEL
from rag.schema import Citation, Hit
from rag.text.lexical import fold

# [1], [1, 2], [1][2], [Document 1], [doc 2]; the model's variants of the same idea.
MARKER = re.compile(r"\[\s*(?:(?:documents?|docs?|passages?|sources?)\s*)?(\d{1,3}(?:\s*[,;]\s*(?:(?:documents?|docs?|passages?|sources?)\s*)?\d{1,3})*)\s*\]", re.IGNORECASE)
_OPEN_TAIL = re.compile(r"\[[^\[\]]{0,40}$")
# A marker with the spaces before it, and the spaces between it and a full stop or comma after it (no
# language spaces those; French does "; : ! ?", so a space before them stays).
_AROUND = re.compile(r"([ \t]*)" + MARKER.pattern + r"(?:[ \t]+(?=[.,](?:\s|$)))?", re.IGNORECASE)
# What may follow a dropped marker for its spaces to go with it: punctuation ending a clause, a space, the end.
_CLOSES = re.compile(r"[.,;:!?](?:\s|$)|\s|$")
_HELD_TAIL = re.compile(r"(?:[ \t]*" + MARKER.pattern + r")*[ \t]*$", re.IGNORECASE)


def clean_markers(text: str, n_passages: int) -> str:
    """Rewrite every marker as [a][b] with only valid numbers; drop markers with none.

    Only the spaces a marker leaves behind are tidied ("chose [12]." -> "chose.", "chose [1] ." ->
    "chose [1]."): spaces the model wrote elsewhere are its text, and in a command they are part of it
    ("tar -cJf a.tar.xz ./src", "find . -print0", code indentation)."""

    def repl(m: re.Match) -> str:
        nums = [int(x) for x in re.findall(r"\d+", m.group(2))]
        kept = "".join(f"[{n}]" for n in dict.fromkeys(n for n in nums if 1 <= n <= n_passages))
        if kept or not _CLOSES.match(text, m.end()):
            return m.group(1) + kept
        return ""

    return _AROUND.sub(repl, text)


class StreamCleaner:
    """Applies clean_markers to a token stream: text that might still become a marker is held back
    until it closes, so a dangling citation is never shown, even for a moment. The leading text is
    also held while it could still be the refusal sentinel."""

    def __init__(self, n_passages: int):
        self.n = n_passages
        self.pending = ""
        self.raw = ""
        self.started = False

    def feed(self, piece: str) -> str:
        self.raw += piece
        self.pending += piece
        if not self.started:
            head = self.pending.lstrip()
            if REFUSAL_SENTINEL.startswith(head.upper()) or head.upper().startswith(REFUSAL_SENTINEL):
                return ""
            self.started = True
        tail = _OPEN_TAIL.search(self.pending)
        cut = tail.start() if tail else len(self.pending)
        # Trailing spaces and complete markers are held too until the next word: if a marker is
        # dropped, its space goes with it and the punctuation after it closes up ("chose [12]." -> "chose.").
        cut = _HELD_TAIL.search(self.pending[:cut]).start()
        ready, self.pending = self.pending[:cut], self.pending[cut:]
        return clean_markers(ready, self.n) if ready else ""

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        if not self.started:
            return ""
        return clean_markers(out, self.n)


def is_refusal(raw: str) -> bool:
    """The model's answer says the documents do not answer (the sentinel, or a plain statement)."""
    text = fold(raw.strip())
    if fold(REFUSAL_SENTINEL) in text[: len(REFUSAL_SENTINEL) + 8] or text.startswith("not found"):
        return True
    if MARKER.search(raw):
        return False
    patterns = (
        r"\b(documents?|passages?|texts?|context)\b.{0,40}\b(do(es)? not|don't|doesn't)\b.{0,30}\b(contain|mention|provide|say|specify|include|state)",
        r"\bno (information|mention|details?)\b",
        r"\b(ne|n)\b.{0,30}\b(contiennent|contient|mentionnent|mentionne|precisent|precise|indiquent|indique|fournissent|fournit)\b.{0,4}\bpas\b",
        r"\baucune (information|mention|precision|indication)\b",
        r"\bnot found\b",
    )
    return any(re.search(p, text) for p in patterns)


def resolve(text: str, passages: list[Hit]) -> tuple[Citation, ...]:
    """The distinct passages cited in text, in order of first citation."""
    seen: list[int] = []
    for m in MARKER.finditer(text):
        for n in (int(x) for x in re.findall(r"\d+", m.group(1))):
            if 1 <= n <= len(passages) and n not in seen:
                seen.append(n)
    return tuple(
        Citation(n=n, source=passages[n - 1].chunk.source, start=passages[n - 1].chunk.start,
                 end=passages[n - 1].chunk.end, text=passages[n - 1].chunk.text, page=passages[n - 1].chunk.page,
                 page_end=passages[n - 1].chunk.page_end, section=passages[n - 1].chunk.section)
        for n in seen
    )
