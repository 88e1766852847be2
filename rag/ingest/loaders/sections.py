"""Headings to located spans: each heading's stretch of text, up to the next heading, is named by
the path of headings it sits under ("3 Installation > 3.2 Disks")."""

from __future__ import annotations

import re
from typing import Iterable

from rag.schema import SECTION_SEPARATOR, Span

MAX_HEADING_CHARS = 120


def clean_heading(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= MAX_HEADING_CHARS else title[: MAX_HEADING_CHARS - 1] + "…"


def section_spans(headings: Iterable[tuple[int, int, str]], text_len: int) -> tuple[Span, ...]:
    """headings: (offset in the text, level 1 = outermost, title), in text order. Text before the
    first heading belongs to no section."""
    heads = [(pos, level, clean_heading(title)) for pos, level, title in headings if title.strip()]
    spans, path = [], []  # path: (level, title) of the headings enclosing the current one
    for i, (pos, level, title) in enumerate(heads):
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, title))
        end = heads[i + 1][0] if i + 1 < len(heads) else text_len
        if end > pos:
            spans.append(Span(pos, end, section=SECTION_SEPARATOR.join(t for _, t in path)))
    return tuple(spans)


def find_headings(text: str, headings: Iterable[tuple[int, str]]) -> list[tuple[int, int, str]]:
    """Place (level, title) headings taken from a document tree in its extracted text, in order:
    each is searched for after the one before; one not found (an empty or hidden heading) is left out."""
    out, pos = [], 0
    for level, title in headings:
        words = title.split()
        if not words:
            continue
        m = re.compile(r"\s+".join(map(re.escape, words))).search(text, pos)
        if m:
            out.append((m.start(), level, title))
            pos = m.end()
    return out
