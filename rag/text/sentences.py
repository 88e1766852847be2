"""The one sentence splitter: spans of a text's sentences, kept as character offsets so that a
citation can point at the exact words. Documents and answers go through the same function; an
answer ends its sentences at fewer marks (ANSWER_ENDS)."""

from __future__ import annotations

import re
from functools import lru_cache

from rag.schema import is_row

# Marks that end a passage's segment: sentences, and the clauses after ";" and ":", each a unit that
# chunking keeps whole and that ranking scores and quotes on its own.
PASSAGE_ENDS = ".!?…;:"
# Marks that end an answer's sentence. Each answer sentence gets its own [n], put before its final
# mark, and is aligned to one context sentence: cut at ";" or ":" it would cite half a claim (what
# follows a colon names no subject) and write the marker after a colon.
ANSWER_ENDS = ".!?"

# Closing quotes and brackets after a mark, and the space after them, separate two segments.
_CLOSING = "\"'»”’)]"
_OPENING = "\"'«“(["
# Closers that open nothing, which French typography puts after a space ("quoi ? » puis").
_SPACED_CLOSING = "»”)]"

# A line that starts with closing punctuation or a lower-case word continues the line before it:
# wire copy and scraped pages break lines inside sentences ("… notre défense »\n, a déclaré M. X").
# A table row (rag.schema.is_row) neither continues a line nor is continued: a row
# starting with a package name in lower case is the next row, not the rest of the last one.
_CONTINUATION = re.compile(r"[,;:.!?)\]»”’]|[^\W\d_](?<=[a-zà-ÿ])")


@lru_cache(maxsize=None)
def _separator(ends: str) -> re.Pattern:
    """A segment ends after one of `ends` (optionally closed by quotes or brackets) followed by space,
    or at a line break; paragraph breaks are one strong boundary."""
    return re.compile(rf"(?<=[{re.escape(ends)}])(?:[{re.escape(_CLOSING)}]|\s[{re.escape(_SPACED_CLOSING)}])*\s+|\n+")


def quoted_mark(text: str, start: int, end: int) -> bool:
    """The mark before text[start:end] (a segment boundary within a line) is quoted, not the end of a
    sentence: it stands alone between quotes (code such as nargs='?' or sep="."), or the quotation it
    closes runs on in lower case ('he asked "why?" and left', « quoi ? » puis): a sentence does not
    start in lower case, the rule period_continues applies to full stops."""
    opened = start >= 2 and text[start - 2] in _OPENING and (start == 2 or not text[start - 3].isalnum())
    if opened and text[start : start + 1] in _CLOSING:
        return True
    closed = any(c in _CLOSING for c in text[start:end])
    return closed and end < len(text) and text[end].islower()


def period_continues(text: str, end: int) -> bool:
    """The full stop at text[end - 1] ends no sentence. A rule of shape, the same in every language
    written with capitals: the stop closes an initial (one capital letter standing alone, of any
    script: "M. Fedorov", "J. R. R. Tolkien", "А. С. Пушкин"), or an abbreviation (a word of at most
    three letters, or one with a full stop inside it) followed by a lower-case word ("etc. and",
    "vs. apt-get", "z.B. die", "p. ej. la"): a sentence does not start in lower case.

    Not told apart: a title before a name ("Dr. Smith") from a sentence ending on a short word before
    the next one ("… in Perl. Then", "… den Weg. Der"), the more common of the two in the corpora
    here; and a long word before a lower-case one ("… mount. ls (1) lists"), where a line starting
    with a command name would be lost."""
    if text[end - 1 : end] != ".":
        return False
    start = end - 1
    while start > 0 and not (text[start - 1].isspace() or text[start - 1] in _OPENING):
        start -= 1
    word = text[start : end - 1]
    if len(word) == 1 and word.isupper():
        return True
    if not word or not (len(word) <= 3 or "." in word) or not word.replace(".", "").isalpha():
        return False
    i = end
    while i < len(text) and (text[i].isspace() or text[i] in _OPENING or text[i] in _CLOSING):
        i += 1
    return i < len(text) and text[i].islower()


def _row_either_side(text: str, start: int, end: int) -> bool:
    """The line ending at `start` or the one starting at `end` is a table row."""
    after_end = text.find("\n", end)
    return is_row(text[text.rfind("\n", 0, start) + 1 : start]) or is_row(text[end : after_end if after_end >= 0 else len(text)])


def sentence_spans(text: str, ends: str = PASSAGE_ENDS) -> list[tuple[int, int]]:
    """Character spans of text's sentences (and of its lines), without the whitespace, closing quotes
    and brackets between them. `ends` are the marks that end one: PASSAGE_ENDS for documents,
    ANSWER_ENDS for a model's answer."""
    spans, pos = [], 0
    for m in _separator(ends).finditer(text):
        if text[m.start()] == "\n" and _CONTINUATION.match(text, m.end()) and not _row_either_side(text, m.start(), m.end()):
            continue
        if "\n" not in m.group(0) and (period_continues(text, m.start()) or quoted_mark(text, m.start(), m.end())):
            continue
        if m.start() > pos:
            spans.append((pos, m.start()))
        pos = m.end()
    if pos < len(text) and text[pos:].strip():
        spans.append((pos, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]
