"""Find and read the documents of a folder, one loader a format: plain text and Markdown, HTML, PDF,
DOCX, ODT and EPUB. A document comes out as text plus the located spans (pages, sections) its
citations name; a file that cannot be read is skipped with a one-line reason, the rest go on."""

from __future__ import annotations

from pathlib import Path

from rag.ingest.loaders.files import (LoadReport, SourceFile, Unreadable, content_kind, find_files, looks_binary,
                                      read_file, read_sources)
from rag.ingest.loaders.html import html_to_text, normalize_whitespace
from rag.ingest.loaders.registry import (FORMATS, HTML_SUFFIXES, SUPPORTED_SUFFIXES, TEXT_SUFFIXES,
                                         content_problem)
from rag.ingest.loaders.text import decode
from rag.schema import Document

__all__ = ["FORMATS", "HTML_SUFFIXES", "LoadReport", "SUPPORTED_SUFFIXES", "SourceFile", "TEXT_SUFFIXES",
           "Unreadable", "content_kind", "content_problem", "decode", "find_files", "html_to_text",
           "load_document", "load_documents", "looks_binary", "normalize_whitespace", "read_file", "read_sources"]


def load_document(src: SourceFile) -> Document | str:
    """The document in a file's bytes, or the reason it is skipped."""
    suffix = src.path.suffix.lower()
    problem = content_problem(suffix, src.data)
    if problem:
        return problem
    try:
        doc = FORMATS[suffix].load(src)
    except Unreadable as e:
        return str(e)
    except Exception as e:  # one undecodable file must not stop the other files from being indexed
        return f"could not be read as {FORMATS[suffix].name} ({type(e).__name__}: {e})"
    return doc if doc.text.strip() else "no text after extraction"


def load_documents(root: Path, max_file_mb: float = 20.0) -> LoadReport:
    """Read every supported file under root; unreadable, empty, oversized files and those whose
    content is not what their name says are skipped with a reason."""
    report = LoadReport()
    for src in read_sources(root, int(max_file_mb * 1_000_000), report):
        doc = load_document(src)
        if isinstance(doc, str):
            report.skipped.append((src.rel, doc))
            continue
        report.documents.append(doc)
        report.hashes[src.rel] = src.sha256
    return report
