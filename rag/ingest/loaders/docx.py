"""Word (.docx) through python-docx: paragraphs and tables in document order, headings (built-in
"Heading N" styles or any paragraph with an outline level) naming the sections.

The text is Word's final view, read from the XML: python-docx's Paragraph.text and
iter_inner_content leave out whatever a wrapper element holds (python-openxml/python-docx issues 6,
340 and 1123, open since 2014): a tracked insertion (w:ins), a content control (w:sdt, which
templates and forms wrap around whole sections), a field's result, a text box. All of that is
the document's text and was lost without a word; deleted and moved-away text (w:del, w:moveFrom)
is not, and stays out."""

from __future__ import annotations

import io
import re

from rag.ingest.loaders.archive import open_zip
from rag.ingest.loaders.files import SourceFile, Unreadable
from rag.ingest.loaders.sections import section_spans
from rag.ingest.loaders.text import first_line_title
from rag.schema import CELL_SEPARATOR, Document

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
# Wrappers whose children are the document's blocks or runs, read through.
_THROUGH = {_W + "sdt", _W + "sdtContent", _W + "customXml", _W + "smartTag", _W + "ins", _W + "moveTo"}
# Not part of the final text: deletions, text moved away, properties, a field's instruction, the
# fallback copy of an alternate content (its first choice is read), and text boxes (read as blocks of their own).
# A ruby's pronunciation guide (w:rt) is read by its base text's side in no reading of the text either.
_SKIPPED = {_W + "del", _W + "moveFrom", _W + "pPr", _W + "rPr", _W + "sdtPr", _W + "instrText",
            _W + "txbxContent", _MC + "Fallback", _W + "rt"}

# OOXML names the built-in heading styles "heading 1".."heading 9" whatever the language of Word's
# interface (a German "Überschrift 1" is stored under that name), and "Title" likewise.
_HEADING_STYLE = re.compile(r"heading (\d)", re.IGNORECASE)
# And the styles of a table of contents' entries "toc 1".."toc 9": such a paragraph names where a
# section is, with its title, and would be the best match of questions it does not answer (the PDF
# loader drops contents pages for the same reason). heading_level gives CONTENTS for one.
_CONTENTS_STYLE = re.compile(r"toc \d", re.IGNORECASE)
CONTENTS = -1


def load_docx(src: SourceFile) -> Document:
    archive = open_zip(src.data, "DOCX")  # refuses ZIP bombs and encrypted archives before python-docx reads it all
    if "word/document.xml" not in archive.namelist():
        raise Unreadable("not a Word document (a ZIP archive without word/document.xml); save it as .docx")
    import docx
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(src.data))
    except Exception as e:  # python-docx raises KeyError, ValueError, lxml errors... for a broken package
        raise Unreadable(f"damaged or not a Word document ({type(e).__name__}: {e}); re-save it as .docx") from None
    lines, headings, pos, title, styles = [], [], 0, None, {}
    body = document.element.body
    for element in blocks(body, notes(document)):
        if element.tag == _W + "tbl":
            text = table_text(element)
        else:
            level = heading_level(Paragraph(element, document._body), styles)
            if level and _in_text_box(element):  # a sidebar's title heads no section of the body
                level = None
            text = paragraph_text(element).strip() if level != CONTENTS else ""
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


def blocks(element, notes: dict | None = None):
    """The paragraphs (w:p) and tables (w:tbl) of a body or table cell in document order, read
    through the wrappers that hold them, each paragraph followed by the paragraphs of its text boxes,
    and each paragraph or table by those of the footnotes and endnotes it refers to (from `notes`)."""
    for child in element:
        tag = child.tag
        if tag == _W + "p":
            yield child
            for box in _text_boxes(child):
                yield from blocks(box)
        elif tag == _W + "tbl":
            yield child
        elif tag == _W + "sdt" and not _read_control(child, block=True):
            continue
        elif tag in _THROUGH:
            yield from blocks(child, notes)
        elif tag == _MC + "AlternateContent":
            yield from blocks(next(iter(child), ()), notes)
        if notes and tag in (_W + "p", _W + "tbl"):
            for ref in child.iter(_W + "footnoteReference", _W + "endnoteReference"):
                note = notes.pop((ref.tag, ref.get(_W + "id")), None)  # each note once
                if note is not None and not _deleted(ref, child):
                    yield from blocks(note)


def _read_control(sdt, block: bool = False) -> bool:
    """A content control's content is text, but not while it shows its placeholder ("Click or tap here
    to enter text." in an unfilled form), nor, for a block, when it is a table of contents (Word's
    and LibreOffice's docPartGallery "Table of Contents")."""
    props = sdt.find(_W + "sdtPr")
    if props is None:
        return True
    if _on(props.find(_W + "showingPlcHdr")):
        return False
    gallery = props.find(f"{_W}docPartObj/{_W}docPartGallery")
    return not (block and gallery is not None and gallery.get(_W + "val") == "Table of Contents")


def _on(flag) -> bool:
    """An OOXML on/off element: on when present without a value or with 1, true or on."""
    return flag is not None and flag.get(_W + "val", "true").lower() in ("1", "true", "on")


def notes(document) -> dict:
    """The document's footnotes and endnotes, by (the tag of a reference to one, its id)."""
    from docx.opc.constants import RELATIONSHIP_TYPE as RT
    from docx.oxml import parse_xml

    out = {}
    for rel in document.part.rels.values():
        kind = {RT.FOOTNOTES: "footnote", RT.ENDNOTES: "endnote"}.get(rel.reltype)
        if kind is None or rel.is_external:
            continue
        part = rel.target_part
        root = part.element if hasattr(part, "element") else parse_xml(part.blob)
        for note in root.iter(_W + kind):
            out[(_W + kind + "Reference", note.get(_W + "id"))] = note
    return out


def _deleted(element, top) -> bool:
    """element lies in a deletion or in text moved away, below top."""
    while element is not None and element is not top:
        if element.tag in (_W + "del", _W + "moveFrom"):
            return True
        element = element.getparent()
    return False


def _in_text_box(element) -> bool:
    return any(a.tag == _W + "txbxContent" for a in element.iterancestors())


def _text_boxes(paragraph):
    """The outermost text boxes anchored in a paragraph (not their fallback copies)."""
    def walk(element):
        for child in element:
            if child.tag == _W + "txbxContent":
                yield child
            elif child.tag not in (_MC + "Fallback", _W + "del", _W + "moveFrom"):
                yield from walk(child)
    return walk(paragraph)


def paragraph_text(paragraph) -> str:
    """A paragraph's final text: runs anywhere under it but in _SKIPPED; tabs and line breaks as
    python-docx writes them, a page or column break as nothing."""
    out: list[str] = []

    def walk(element):
        for child in element:
            tag = child.tag
            if tag in _SKIPPED or (tag == _W + "sdt" and not _read_control(child)):
                continue
            if tag == _W + "t":
                out.append(child.text or "")
            elif tag in (_W + "tab", _W + "ptab"):
                out.append("\t")
            elif tag in (_W + "br", _W + "cr"):
                out.append("" if child.get(_W + "type") in ("page", "column") else "\n")
            elif tag == _W + "noBreakHyphen":
                out.append("-")
            else:
                walk(child)

    walk(paragraph)
    return "".join(out)


def heading_level(paragraph, styles: dict) -> int | None:
    """1-9 for a heading, 0 for the document's title, CONTENTS for an entry of a table of contents,
    None for body text. `styles` memoizes what each style says (a dict kept for one document):
    python-docx looks a paragraph's style up by scanning every style of the document, 97% of the
    time of reading a long one (cProfile, 5,000 paragraphs)."""
    key = paragraph._p.style  # the style id, None for the default one
    if key not in styles:
        styles[key] = _style_level(paragraph.style)
    return _level(paragraph, *styles[key])


def _style_level(style) -> tuple[int | None, int | None]:
    """(level its name says, level its outline level says) of a paragraph style."""
    name = (style.name or "") if style is not None else ""
    if name.lower() == "title":
        return 0, None
    if _CONTENTS_STYLE.fullmatch(name):
        return CONTENTS, None
    m = _HEADING_STYLE.fullmatch(name)
    if m:
        return int(m.group(1)), None
    # Custom styles mark headings by their outline level instead.
    return None, next((level for level in map(_outline_level, _style_chain(style)) if level is not None), None)


def _level(paragraph, named: int | None, outlined: int | None) -> int | None:
    if named is not None:
        return named
    # Direct formatting's outline level before the style's.
    own = _outline_level(paragraph._p)
    level = own if own is not None else outlined
    return level + 1 if level is not None and level < 9 else None


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
    """One line a row, cells separated by " | ", read from the XML through the wrappers around rows
    and cells (a repeating section's content control, which python-docx's rows and cells do not
    see): a cell merged across columns is written once, one merged down from the row above repeats
    that row's text, as python-docx's cells give it."""
    rows, above = [], {}  # grid column -> text of the cell a vertical merge starts there
    for tr, _ in _within(table, "tr"):
        cells, column = [], _grid(tr.find(_W + "trPr"), "gridBefore", 0)
        for tc, shown in _within(tr, "tc"):
            props = tc.find(_W + "tcPr")
            span = _grid(props, "gridSpan", 1)
            merge = props.find(_W + "vMerge") if props is not None else None
            if merge is not None and merge.get(_W + "val") != "restart":
                text = above.get(column, "")
            else:
                text = above[column] = " ".join(cell_text(tc).split()) if shown else ""
            for covered in range(column + 1, column + span):  # no merge continues from under a span
                above.pop(covered, None)
            cells.append(text)
            column += span
        if any(cells):
            rows.append(CELL_SEPARATOR.join(cells))
    return "\n".join(rows)


def _grid(props, name: str, default: int) -> int:
    """A row's gridBefore or a cell's gridSpan (columns of the table's grid), default when absent."""
    node = props.find(_W + name) if props is not None else None
    try:
        return max(default, int(node.get(_W + "val"))) if node is not None else default
    except (TypeError, ValueError):
        return default


def _within(element, name: str, shown: bool = True):
    """(child, shown) for element's children named w:<name>, read through the wrappers that may hold
    them; shown is False for one inside a content control showing its placeholder (an empty cell, a
    column all the same)."""
    for child in element:
        if child.tag == _W + name:
            yield child, shown
        elif child.tag in _THROUGH:
            yield from _within(child, name, shown and (child.tag != _W + "sdt" or _read_control(child)))


def cell_text(tc) -> str:
    return "\n".join(table_text(b) if b.tag == _W + "tbl" else paragraph_text(b) for b in blocks(tc))
