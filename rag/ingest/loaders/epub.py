"""EPUB (2 and 3): the XHTML documents of the spine in reading order, read from the ZIP with the
standard library; their h1-h6 headings name the sections. (EbookLib, the usual library, is AGPL.)"""

from __future__ import annotations

import posixpath
from urllib.parse import unquote

from rag.ingest.loaders.archive import open_zip, read_member, read_xml
from rag.ingest.loaders.files import SourceFile, Unreadable
from rag.ingest.loaders.html import parse_html
from rag.ingest.loaders.sections import section_spans
from rag.ingest.loaders.text import decode, first_line_title
from rag.schema import Document

_OPF = "{http://www.idpf.org/2007/opf}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_XENC = "{http://www.w3.org/2001/04/xmlenc#}"
_XHTML_TYPES = {"application/xhtml+xml", "text/html"}


def spine_documents(archive) -> tuple[list[str], str | None]:
    """Paths inside the ZIP of the spine's XHTML documents in reading order, and the book's title."""
    container = read_xml(archive, "META-INF/container.xml", "EPUB")
    rootfile = container.find(f".//{_CONTAINER}rootfile")
    if rootfile is None or not rootfile.get("full-path"):
        raise Unreadable("not a valid EPUB: META-INF/container.xml names no package document")
    opf_path = rootfile.get("full-path")
    opf = read_xml(archive, opf_path, "EPUB")
    base = posixpath.dirname(opf_path)
    items = {item.get("id"): item for item in opf.iter(f"{_OPF}item")}
    paths = []
    for ref in opf.iter(f"{_OPF}itemref"):
        item = items.get(ref.get("idref"))
        if item is not None and item.get("media-type") in _XHTML_TYPES and item.get("href"):
            paths.append(posixpath.normpath(posixpath.join(base, unquote(item.get("href")))))
    title = opf.find(f".//{_DC}title")
    return paths, (title.text or "").strip() if title is not None and title.text else None


def encrypted_paths(archive) -> set[str]:
    """Members encrypted by DRM; font obfuscation lists fonts only, which are not read."""
    if "META-INF/encryption.xml" not in archive.namelist():
        return set()
    root = read_xml(archive, "META-INF/encryption.xml", "EPUB")
    return {unquote(ref.get("URI", "")) for ref in root.iter(f"{_XENC}CipherReference")}


def load_epub(src: SourceFile) -> Document:
    archive = open_zip(src.data, "EPUB")
    paths, title = spine_documents(archive)
    if set(paths) & encrypted_paths(archive):
        raise Unreadable("DRM-protected EPUB (its chapters are encrypted); index a DRM-free copy")
    parts, headings, pos = [], [], 0
    for path in paths:
        text, _, chapter_headings = parse_html(decode(read_member(archive, path, "EPUB")))
        if not text:
            continue
        if parts:
            pos += 2  # the "\n\n" between chapters
        headings += [(pos + at, level, h) for at, level, h in chapter_headings]
        parts.append(text)
        pos += len(text)
    body = "\n\n".join(parts)
    return Document(path=src.rel, title=title or first_line_title(body, src.path.stem), text=body,
                    spans=section_spans(headings, len(body)))
