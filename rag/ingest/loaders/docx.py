"""Word (.docx) through python-docx: paragraphs and tables in document order, headings (built-in
"Heading N" styles or any paragraph with an outline level) naming the sections."""

from __future__ import annotations

import io
import re

from rag.ingest.loaders.archive import open_zip
from rag.ingest.loaders.files import SourceFile, Unreadable
from rag.ingest.loaders.sections import section_spans
from rag.ingest.loaders.text import first_line_title
from rag.schema import Document

# OOXML names the built-in heading styles "heading 1".."heading 9" whatever the language of Word's
# interface (a German "Überschrift 1" is stored under that name), and "Title" likewise.
_HEADING_STYLE = re.compile(r"heading (\d)", re.IGNORECASE)


def load_docx(src: SourceFile) -> Document:
    archive = open_zip(src.data, "DOCX")  # refuses ZIP bombs and encrypted archives before python-docx reads it all
    if "word/document.xml" not in archive.namelist():
        raise Unreadable("not a Word document (a ZIP archive without word/document.xml); save it as .docx")
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(src.data))
    except Exception as e:  # python-docx raises KeyError, ValueError, lxml errors... for a broken package
        raise Unreadable(f"damaged or not a Word document ({type(e).__name__}: {e}); re-save it as .docx") from None
    lines, headings, pos, title = [], [], 0, None
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            text = table_text(block)
        else:
            text = block.text.strip()
            level = heading_level(block)
            if text and level == 0 and title is None:
                title = text
            elif text and level:
                headings.append((pos, level, text))
        if text:
            lines.append(text)
            pos += len(text) + 1
    body = "\n".join(lines)
    return Document(path=src.rel, title=title or first_line_title(body, src.path.stem), text=body,
                    spans=section_spans(headings, len(body)))


def heading_level(paragraph) -> int | None:
    """1-9 for a heading, 0 for the document's title, None for body text."""
    style = paragraph.style
    name = (style.name or "") if style is not None else ""
    if name.lower() == "title":
        return 0
    m = _HEADING_STYLE.fullmatch(name)
    if m:
        return int(m.group(1))
    # Custom styles (and direct formatting) mark headings by their outline level instead.
    for element in [paragraph._p, *_style_chain(style)]:
        level = _outline_level(element)
        if level is not None:
            return level + 1 if level < 9 else None
    return None


def _style_chain(style):
    seen = 0
    while style is not None and seen < 10:
        yield style.element
        style, seen = style.base_style, seen + 1


def _outline_level(element) -> int | None:
    from docx.oxml.ns import qn

    ppr = element.find(qn("w:pPr"))
    node = ppr.find(qn("w:outlineLvl")) if ppr is not None else None
    try:
        return int(node.get(qn("w:val"))) if node is not None else None
    except (TypeError, ValueError):
        return None


def table_text(table) -> str:
    """One line a row, cells separated by " | "; a merged cell is written once."""
    rows = []
    for row in table.rows:
        cells, last = [], None
        for cell in row.cells:
            if cell._tc is last:
                continue
            last = cell._tc
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)
