"""OpenDocument text (.odt) through odfpy: headings, paragraphs, lists and tables in document
order, text:h outline levels naming the sections."""

from __future__ import annotations

import io

from rag.ingest.loaders.archive import open_zip, read_member
from rag.ingest.loaders.files import SourceFile, Unreadable
from rag.ingest.loaders.sections import section_spans
from rag.ingest.loaders.text import first_line_title
from rag.schema import Document

TEXT_NS = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
TABLE_NS = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
# Elements whose text is not the document's running text.
_SKIPPED = {(TEXT_NS, "tracked-changes"), (TEXT_NS, "sequence-decls"), (TEXT_NS, "note"), (TEXT_NS, "table-of-content")}


def load_odt(src: SourceFile) -> Document:
    archive = open_zip(src.data, "ODT")
    if b"encryption-data" in read_member(archive, "META-INF/manifest.xml", "ODT"):
        raise Unreadable("encrypted ODT (password-protected); index an unprotected copy")
    from odf.opendocument import load

    try:
        document = load(io.BytesIO(src.data))
        body = document.text
    except Exception as e:  # odfpy raises KeyError, SAX and XML errors for a broken package
        raise Unreadable(f"damaged or not an OpenDocument text ({type(e).__name__}: {e}); re-save it as .odt") from None
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
    from odf import teletype

    for child in element.childNodes:
        qname = getattr(child, "qname", None)
        if qname is None or qname in _SKIPPED:
            continue
        if qname == (TEXT_NS, "h"):
            text = " ".join(teletype.extractText(child).split())
            if text:
                out.append((_level(child), text))
        elif qname == (TEXT_NS, "p"):
            text = teletype.extractText(child).strip()
            if text:
                out.append((None, text))
        elif qname == (TABLE_NS, "table-row"):
            cells = [" ".join(teletype.extractText(c).split()) for c in child.childNodes
                     if getattr(c, "qname", None) == (TABLE_NS, "table-cell")]
            if any(cells):
                out.append((None, " | ".join(cells)))
        else:  # lists, sections, tables, frames: their blocks are deeper
            collect(child, out)


def _level(heading) -> int:
    try:
        return max(1, int(heading.getAttribute("outlinelevel") or 1))
    except (TypeError, ValueError):
        return 1
