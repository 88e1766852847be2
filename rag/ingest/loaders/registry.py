"""Which loader reads which file suffix, and what its bytes must look like (content_kind)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from rag.ingest.loaders.docx import load_docx
from rag.ingest.loaders.epub import load_epub
from rag.ingest.loaders.files import SourceFile, content_kind
from rag.ingest.loaders.html import load_html
from rag.ingest.loaders.odt import load_odt
from rag.ingest.loaders.pdf import load_pdf
from rag.ingest.loaders.text import load_text
from rag.schema import Document


@dataclass(frozen=True)
class Format:
    name: str
    content: str  # what content_kind must say of its bytes
    load: Callable[[SourceFile], Document]


_TEXT, _HTML = Format("text", "text", load_text), Format("HTML", "text", load_html)
FORMATS: dict[str, Format] = {
    ".txt": _TEXT, ".text": _TEXT, ".md": _TEXT, ".markdown": _TEXT,
    ".html": _HTML, ".htm": _HTML, ".xhtml": _HTML,
    ".pdf": Format("PDF", "PDF", load_pdf),
    ".docx": Format("DOCX", "ZIP", load_docx),
    ".odt": Format("ODT", "ZIP", load_odt),
    ".epub": Format("EPUB", "ZIP", load_epub),
}
SUPPORTED_SUFFIXES = frozenset(FORMATS)
TEXT_SUFFIXES = {s for s, f in FORMATS.items() if f is _TEXT}
HTML_SUFFIXES = {s for s, f in FORMATS.items() if f is _HTML}

_RENAME = {"PDF": "it is a PDF; rename it to .pdf", "HTML": "it is HTML; rename it to .html",
           "text": "it is plain text; rename it to .txt", "ZIP": "it is a ZIP archive of another kind",
           "binary": "it is binary data"}
# Office writes a password-protected .docx as an OLE compound file, the format of the old .doc.
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def content_problem(suffix: str, data: bytes) -> str | None:
    """Why bytes named with this suffix cannot be indexed before reading them (empty, binary where
    text is expected, another format than the name says), or None. The web upload checks with it too."""
    fmt = FORMATS.get(suffix.lower())
    if fmt is None:
        return f"unsupported file type {suffix or '(none)'}; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
    if not data.strip():
        return "empty"
    kind = content_kind(data)
    if fmt.content == "text":
        return None if kind in ("text", "HTML") else "binary content, not text" + (f" ({_RENAME[kind]})" if kind in ("PDF", "ZIP") else "")
    if kind == fmt.content:
        return None
    if fmt.content == "ZIP" and data.startswith(_OLE):
        return f"not a {fmt.name} but an OLE file: a password-protected Office document or an old .doc; save it as {suffix} without a password"
    return f"not a {fmt.name} ({_RENAME[kind]})"
