"""Plain text and Markdown: characters kept exactly (only \r\n becomes \n), so a citation's span
indexes the decoded file itself; Markdown headings name the sections."""

from __future__ import annotations

import re

from rag.ingest.loaders.files import SourceFile
from rag.ingest.loaders.sections import section_spans
from rag.schema import Document

MARKDOWN_SUFFIXES = {".md", ".markdown"}


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) first; otherwise the most likely legacy encoding."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        # A BOM promises UTF-16; an odd length or lone surrogate must not abort the whole run.
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if not matches:
        return data.decode("cp1252", errors="replace")
    best = matches[0]
    # Short texts often fit several single-byte code pages equally well; Windows-1252 (a superset
    # of Latin-1) is by far the most common of them, so it wins any tie.
    for m in matches:
        if m.chaos <= best.chaos and "cp1252" in m.could_be_from_charset:
            return data.decode("cp1252", errors="replace")
    return str(best)


def first_line_title(text: str, fallback: str) -> str:
    first = text.split("\n", 1)[0].lstrip("# ").strip()
    return first[:120] if first else fallback


def load_text(src: SourceFile) -> Document:
    text = decode(src.data).replace("\r\n", "\n")
    spans = markdown_sections(text) if src.path.suffix.lower() in MARKDOWN_SUFFIXES else ()
    return Document(path=src.rel, title=first_line_title(text, src.path.stem), text=text, spans=spans)


def markdown_sections(text: str):
    """Sections of a Markdown text by its ATX and setext headings, found by a CommonMark parser so
    that a '#' line inside a code block is no heading."""
    from markdown_it import MarkdownIt

    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    tokens = MarkdownIt("commonmark").parse(text)
    headings = []
    for open_, inline in zip(tokens, tokens[1:]):
        if open_.type == "heading_open" and open_.map:
            title = "".join(c.content for c in inline.children or () if c.type in ("text", "code_inline"))
            headings.append((line_starts[open_.map[0]], int(open_.tag[1]), title))
    return section_spans(headings, len(text))
