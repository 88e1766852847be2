"""The one sentence splitter: spans of a document's sentences and of an answer's, kept as character
offsets so that a citation can point at the exact words."""

from __future__ import annotations

import re

# A segment ends after sentence punctuation (optionally closed by a quote or bracket) followed by
# space, or at a line break. Paragraph breaks are kept as their own strong boundary.
_SEGMENT_END = re.compile(r"(?<=[.!?…;:])[\"'»”’)\]]*\s+|\n+")

# "M. Fedorov", "Mme Vautrin", "J. R. R. Tolkien": a full stop after an initial or a title ends nothing.
ABBREVIATION = re.compile(r"(?:^|[\s(«“\"'])(?:[A-ZÀ-Ý]|Mme|Mlle|MM|Mr|Mrs|Ms|Dr|Pr|Prof|St|Sr|Jr|Me|Mgr|No|vs|etc|cf)\.$")

# A line that starts with closing punctuation or a lower-case word continues the line before it:
# wire copy and scraped pages break lines inside sentences ("… notre défense »\n, a déclaré M. X").
_CONTINUATION = re.compile(r"[,;:.!?)\]»”’]|[^\W\d_](?<=[a-zà-ÿ])")

def ends_with_abbreviation(text: str, end: int | None = None) -> bool:
    """text[:end] ends with the full stop of an initial or a title ("M.", "Mme.", "etc."), which ends no sentence."""
    end = len(text) if end is None else end
    return text[end - 1 : end] == "." and bool(ABBREVIATION.search(text, max(0, end - 6), end))

def split_segments(text: str) -> list[tuple[int, int]]:
    """Character spans of sentences/lines, covering the text without its separating whitespace."""
    spans, pos = [], 0
    for m in _SEGMENT_END.finditer(text):
        if text[m.start()] == "\n" and _CONTINUATION.match(text, m.end()):
            continue
        if "\n" not in m.group(0) and ends_with_abbreviation(text, m.start()):
            continue
        if m.start() > pos:
            spans.append((pos, m.start()))
        pos = m.end()
    if pos < len(text) and text[pos:].strip():
        spans.append((pos, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


# A sentence ends at . ! ? followed by a space or the end (so "2.5" does not split), or at a line break.
_ANSWER_SENTENCE = re.compile(r"[^\n]+?(?:[.!?]+(?=\s|$)|(?=\n)|$)")

def answer_sentences(answer: str) -> list[tuple[int, int]]:
    """Character spans of the answer's sentences; "M. Fedorov" or "Mme. X" ends none."""
    spans: list[tuple[int, int]] = []
    glued = False
    for m in _ANSWER_SENTENCE.finditer(answer):
        if not m.group(0):
            continue
        if glued:
            spans[-1] = (spans[-1][0], m.end())
        else:
            spans.append((m.start(), m.end()))
        glued = ends_with_abbreviation(answer, m.end())
    return spans
