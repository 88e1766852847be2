"""PDF: the text layer of each page through PDFium (pypdfium2), cleaned (rag.ingest.loaders.pages),
with a span per page (1-based) and the document outline's bookmarks as sections. docs/documents.md
has why PDFium and not pypdf or pdfminer. Pages without text are not read by OCR: a PDF whose pages
are all images is skipped, one whose pages are only partly images (a scanned page among typeset ones)
is indexed from its text pages with one warning naming the others."""

from __future__ import annotations

from rag.ingest.loaders.files import SourceFile, Unreadable
from rag.ingest.loaders.pages import clean_pages
from rag.ingest.loaders.sections import clean_heading, find_headings, section_spans
from rag.ingest.loaders.text import first_line_title
from rag.schema import Document, Span

# pypdfium2's error codes (FPDF_ERR_*) that say why a document does not open.
_PASSWORD, _FORMAT, _FILE = 4, 3, 2


def pdf_pages(data: bytes, images: list[int] | None = None) -> tuple[list[str], list[tuple[int, int, str]]]:
    """Raw text of every page and the outline as (page index, level, title). The metadata's title is
    not used: writers fill it with "untitled" or the name of a file it was converted from. `images`,
    when given, receives the 1-based numbers of the pages without text that hold an image (a scan; a
    page left blank is none)."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as e:
        code = getattr(e, "err_code", None)
        if code == _PASSWORD:
            raise Unreadable("encrypted PDF: it needs a password; index an unprotected copy") from None
        raise Unreadable(f"damaged PDF, PDFium cannot open it ({'broken structure' if code in (_FORMAT, _FILE) else e}); "
                         "re-export or repair it") from None
    try:
        pages = []
        for i in range(len(pdf)):
            page = pdf[i]
            textpage = page.get_textpage()
            pages.append(textpage.get_text_bounded())
            textpage.close()
            if images is not None and not pages[-1].strip() and any(
                    True for _ in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE])):
                images.append(i + 1)
            page.close()
        outline = []
        for item in pdf.get_toc():
            dest = item.get_dest()
            index = dest.get_index() if dest is not None else None
            if index is not None and 0 <= index < len(pages):
                outline.append((index, item.level + 1, item.get_title() or ""))
    finally:
        pdf.close()
    return pages, outline


def page_ranges(numbers: list[int]) -> str:
    """[2, 3, 4, 7] -> "2-4, 7"."""
    out, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            out.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ", ".join(out)


def load_pdf(src: SourceFile) -> Document:
    scanned: list[int] = []
    raw, outline = pdf_pages(src.data, scanned)
    if not raw:
        raise Unreadable("PDF without pages")
    if not any(p.strip() for p in raw):
        raise Unreadable(f"no text layer in its {len(raw)} page(s) (a scan or images only); rag does no OCR: "
                         "run OCR on it first (e.g. ocrmypdf) and index the result")
    pages = clean_pages(raw)
    text, page_spans, pos = [], [], 0
    for number, page in enumerate(pages, start=1):
        if page:
            if text:
                pos += 1  # the "\n" joining it to the page before
            page_spans.append(Span(pos, pos + len(page), page=number))
            text.append(page)
            pos += len(page)
    joined = "\n".join(text)
    warnings = ()
    if scanned:
        warnings = (f"page{'s' if len(scanned) > 1 else ''} {page_ranges(scanned)} of {len(raw)} "
                    f"{'are images' if len(scanned) > 1 else 'is an image'} without a text layer (scanned?) and "
                    "not indexed; rag does no OCR: run OCR on the file (e.g. ocrmypdf) to index them too",)
    return Document(path=src.rel, title=first_line_title(joined, src.path.stem), text=joined,
                    spans=tuple(page_spans) + outline_sections(joined, page_spans, outline), warnings=warnings)


def outline_sections(text: str, page_spans: list[Span], outline: list[tuple[int, int, str]]) -> tuple[Span, ...]:
    """Sections from the PDF's bookmarks: each starts where its title is written on its page, or at
    the top of that page when the title is not found there."""
    starts = {s.page: s.start for s in page_spans}
    ends = {s.page: s.end for s in page_spans}
    headings, floor = [], 0
    for index, level, title in outline:
        page = index + 1
        if page not in starts:
            continue
        begin = max(starts[page], floor)
        found = find_headings(text[begin : ends[page]], [(level, clean_heading(title))]) if begin < ends[page] else []
        pos = begin + found[0][0] if found else begin
        headings.append((pos, level, title))
        floor = pos
    return section_spans(headings, len(text))
