"""Clean the text of paged documents (PDF): running headers and footers, line-end hyphenation and
typographic ligatures. Pure functions on a list of page texts; docs/documents.md has what each
step measured on real PDFs."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

# Lines among the first and last EDGE_LINES of a page that recur (digits aside) on at least this
# share of the pages are running headers or footers ("Debian Reference 73 / 233" on 89% of that
# book's pages; the most common real line at a page edge, "Tip", on 6%).
EDGE_LINES = 2
REPEATED_SHARE = 0.4
MIN_PAGES = 3

# PDFium marks the hyphen it removed at a line end with U+0002; other extractors keep "-\n". A
# word may also break across two pages (PAGE_BREAK between them while the pages are cleaned).
_SOFT_BREAK = "\x02"
PAGE_BREAK = "\x1f"
_BROKEN_WORD = re.compile(r"(\w+)(?:\x02|-\n)(\x1f?)(\w+)")
_LIGATURES = str.maketrans({chr(c): unicodedata.normalize("NFKC", chr(c)) for c in range(0xFB00, 0xFB07)})
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_WORD = re.compile(r"\w+(?:-\w+)*")


# A contents entry: a title, dot leaders (". . . ." or "....") and a page number: arabic, roman,
# chapter-page ("2-1", "A-1") or a range ("4-9"). A page whose lines are mostly such entries, their
# numbers going down rarely (a part or a list of figures starting again from its first pages), is a
# table of contents or a list of tables or figures: it names where things are, with every section's
# title in it, and so was the best match of many questions while answering none (18 such pages led
# the passages of the Debian Reference PDF, docs/documents.md). A price list or a form has leaders
# too, but not page numbers in order. The leaders' run is matched from its first dot and
# possessively: searched from any dot, a line of many dots took seconds.
_CONTENTS_ENTRY = re.compile(r"(?<!\.)(?<!\.\s)(?:\.\s?){5,}+\s*(\d+(?:[-–.]\d+)?|[A-Z]-\d+|[ivxlcdm]+)\s*$",
                             re.IGNORECASE)
CONTENTS_SHARE = 0.5
# Share of a contents page's entries whose number may be lower than the one before.
CONTENTS_RESTARTS = 0.2


def contents_page(lines: list[str]) -> bool:
    """The page is a table of contents (or a list of tables): at least CONTENTS_SHARE of its lines
    are entries with dot leaders and a page number, and at most CONTENTS_RESTARTS of their arabic
    numbers are lower than the one before. A shape, the same in every language."""
    real = [ln for ln in lines if ln.strip()]
    entries = [m.group(1) for m in map(_CONTENTS_ENTRY.search, real) if m]
    numbers = [tuple(map(int, re.findall(r"\d+", n))) for n in entries if n[0].isdigit()]
    restarts = sum(b < a for a, b in zip(numbers, numbers[1:]))
    return bool(real) and len(entries) >= CONTENTS_SHARE * len(real) and restarts <= CONTENTS_RESTARTS * len(numbers)


# Page numbers in a running line vary: arabic or roman ("xx" in a book's front matter), "12 / 233",
# "- 12 -"; the line is known by its other words, a bare page number by "#".
_PAGE_NUMBER = re.compile(r"\d+|\b[ivxlcdm]+\b|[^\w\s]+", re.IGNORECASE)


def edge_key(line: str) -> str:
    return " ".join(_PAGE_NUMBER.sub(" ", line).split()) or ("#" if line.strip() else "")


def running_lines(pages: list[list[str]]) -> set[str]:
    """Keys of the lines repeated at page edges on most pages."""
    if len(pages) < MIN_PAGES:
        return set()
    counts: Counter[str] = Counter()
    for lines in pages:
        real = [ln for ln in lines if ln.strip()]
        counts.update({edge_key(ln) for ln in real[:EDGE_LINES] + real[-EDGE_LINES:]})
    floor = max(MIN_PAGES, REPEATED_SHARE * len(pages))
    return {key for key, n in counts.items() if n >= floor and key}


def strip_running_lines(pages: list[list[str]]) -> list[list[str]]:
    repeated = running_lines(pages)
    if not repeated:
        return pages
    out = []
    for lines in pages:
        real = [i for i, ln in enumerate(lines) if ln.strip()]
        edges = set(real[:EDGE_LINES] + real[-EDGE_LINES:])
        out.append([ln for i, ln in enumerate(lines) if i not in edges or edge_key(ln) not in repeated])
    return out


def dehyphenate(text: str) -> str:
    """Join words broken at a line end. A hyphen the document itself writes elsewhere ("non-developers")
    stays; otherwise it was the typesetter's ("distri-bution") and goes. The document is its own
    dictionary: no language's word list is needed. A word broken across pages ends the first page."""
    breaks = list(_BROKEN_WORD.finditer(text))
    if not breaks:
        return text
    seen = Counter(w.lower() for w in _WORD.findall(_BROKEN_WORD.sub(" ", text)))
    for w in list(seen):
        if "-" in w:
            seen.update(w.split("-"))
    pieces, pos = [], 0
    for m in breaks:
        left, page_break, right = m.groups()
        joined, hyphenated = (left + right).lower(), f"{left}-{right}".lower()
        keep = seen[hyphenated] > seen[joined] or not right[0].islower()
        pieces += [text[pos : m.start()], left, "-" if keep else "", right, page_break]
        pos = m.end()
    pieces.append(text[pos:])
    return "".join(pieces)


def clean_pages(pages: list[str], strip_repeated: bool = True) -> list[str]:
    """Per-page text, cleaned: ligatures as letters (NFKC of U+FB00-FB06 only), running headers
    and footers dropped, line-end hyphenation undone, and contents pages left empty (their page
    numbers stay those of the document)."""
    split = [p.replace("\r\n", "\n").replace("\r", "\n").translate(_LIGATURES).split("\n") for p in pages]
    if strip_repeated:
        split = strip_running_lines(split)
    split = [[] if contents_page(lines) else lines for lines in split]
    texts = [_CONTROLS.sub("", "\n".join(ln.rstrip() for ln in lines).replace(_SOFT_BREAK, "-\n")).strip("\n")
             for lines in split]
    # The pages are cleaned as one text, so that a word broken across two of them is joined too.
    whole = dehyphenate(("\n" + PAGE_BREAK).join(texts))
    return [t.strip() for t in whole.split(PAGE_BREAK)]
