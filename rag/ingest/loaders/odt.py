"""OpenDocument text (.odt): headings, paragraphs, lists and tables of content.xml in document
order, read with the standard library's XML parser (defusedxml), text:h outline levels naming the
sections. odfpy parsed every part of the package, and a styles.xml it rejects (pandoc 2.17 declares a
namespace twice in it) made the whole file unreadable and printed that XML to the terminal; the text
is all in content.xml. A footnote's or a text box's paragraphs are lines
of their own after the paragraph they are anchored in (odfpy's extractText writes them into it:
"6 heures1Heure de Paris. et"); a reviewer's comment is not the document's text."""

from __future__ import annotations

import re

from rag.ingest.loaders.archive import open_zip, read_member, read_xml
from rag.ingest.loaders.files import SourceFile, Unreadable
from rag.ingest.loaders.sections import section_spans
from rag.ingest.loaders.text import first_line_title
from rag.schema import CELL_SEPARATOR, Document

TEXT_NS = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
TABLE_NS = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
OFFICE_NS = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
DRAW_NS = "{urn:oasis:names:tc:opendocument:xmlns:drawing:1.0}"
# ODF collapses a run of white space in a paragraph's characters to one space (text:s, text:tab and
# text:line-break write the others), as HTML does.
_SPACES = re.compile(r"[ \t\r\n]+")
# Inside a paragraph: blocks anchored there (read after it), and what is no text of it.
# A footnote's body, and any drawing object (frame, text box, shape, caption) of the draw namespace.
_ANCHORED = {TEXT_NS + "note-body"}
_INLINE_SKIPPED = {TEXT_NS + "note-citation", OFFICE_NS + "annotation", OFFICE_NS + "annotation-end"}
# Elements whose text is not the document's running text.
# The indexes a writer generates (contents, tables, figures, terms) name where things are, with page
# numbers: the best match of questions they do not answer (the PDF loader drops contents pages too).
# A bibliography is content (authors, titles) and stays.
_SKIPPED = {TEXT_NS + "tracked-changes", TEXT_NS + "sequence-decls", TEXT_NS + "note", TEXT_NS + "table-of-content",
            TEXT_NS + "illustration-index", TEXT_NS + "table-index", TEXT_NS + "object-index",
            TEXT_NS + "user-index", TEXT_NS + "alphabetical-index"}


def load_odt(src: SourceFile) -> Document:
    archive = open_zip(src.data, "ODT")
    if b"encryption-data" in read_member(archive, "META-INF/manifest.xml", "ODT"):
        raise Unreadable("encrypted ODT (password-protected); index an unprotected copy")
    body = read_xml(archive, "content.xml", "ODT").find(f"{OFFICE_NS}body/{OFFICE_NS}text")
    if body is None:
        raise Unreadable("not an OpenDocument text (content.xml has no office:text); save it as .odt")
    blocks: list[tuple[int | None, str]] = []
    collect(body, blocks)
    lines, headings, pos = [], [], 0
    for level, text in blocks:
        if level:
            headings.append((pos, level, text))
        lines.append(text)
        pos += len(text) + 1
    text = "\n".join(lines)
    return Document(path=src.rel, title=first_line_title(text, src.path.stem), text=text,
                    spans=section_spans(headings, len(text)))


def collect(element, out: list[tuple[int | None, str]]) -> None:
    """(heading level or None, text) of each block under element, in document order."""
    for child in element:
        tag = child.tag
        if tag in _SKIPPED:
            continue
        if tag in (TEXT_NS + "h", TEXT_NS + "p"):
            anchored: list = []
            text = inline_text(child, anchored)
            text = " ".join(text.split()) if tag == TEXT_NS + "h" else text.strip()
            if text:
                out.append((_level(child) if tag == TEXT_NS + "h" else None, text))
            for block in anchored:
                collect(block, out)
        elif tag == TABLE_NS + "table-row":
            cells = [" ".join(_cell_text(c).split()) for c in child if c.tag == TABLE_NS + "table-cell"]
            if any(cells):
                out.append((None, CELL_SEPARATOR.join(cells)))
        else:  # lists, sections, tables, frames: their blocks are deeper
            collect(child, out)


def inline_text(element, anchored: list) -> str:
    """A paragraph's own text; the footnote bodies and drawing objects met on the way are added to
    `anchored`. What follows a child element (its tail) is the paragraph's text, whatever the child."""
    out = [_SPACES.sub(" ", element.text or "")]
    for child in element:
        tag = child.tag
        if tag in _ANCHORED or tag.startswith(DRAW_NS):
            anchored.append(child)
        elif tag == TEXT_NS + "line-break":
            out.append("\n")
        elif tag == TEXT_NS + "tab":
            out.append("\t")
        elif tag == TEXT_NS + "s":
            try:
                out.append(" " * max(1, int(child.get(TEXT_NS + "c") or 1)))
            except ValueError:
                out.append(" ")
        elif tag not in _INLINE_SKIPPED:  # spans, links, a note (its citation skipped, its body anchored)
            out.append(inline_text(child, anchored))
        out.append(_SPACES.sub(" ", child.tail or ""))
    return "".join(out)


def _cell_text(cell) -> str:
    blocks: list[tuple[int | None, str]] = []
    collect(cell, blocks)
    return " ".join(text for _, text in blocks)


def _level(heading) -> int:
    try:
        return max(1, int(heading.get(TEXT_NS + "outline-level") or 1))
    except (TypeError, ValueError):
        return 1
