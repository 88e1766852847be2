"""ZIP containers (DOCX, ODT, EPUB): opened only after checking what they would expand to, so a
small file cannot fill memory (a ZIP bomb), and with a one-line reason when they cannot be read."""

from __future__ import annotations

import io
import zipfile

from rag.ingest.loaders.files import Unreadable

MAX_EXPANDED_BYTES = 300_000_000
MAX_RATIO = 200  # deflate reaches about 1000:1 only on degenerate input; real documents stay far below


def open_zip(data: bytes, kind: str) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise Unreadable(f"damaged {kind} (its ZIP structure is broken: {e}); re-save it") from None
    expanded = sum(m.file_size for m in members)
    if expanded > MAX_EXPANDED_BYTES or expanded > MAX_RATIO * max(len(data), 1):
        raise Unreadable(f"{kind} that would expand to {expanded / 1e6:.0f} MB (a ZIP bomb?); not opened")
    if any(m.flag_bits & 0x1 for m in members):
        raise Unreadable(f"encrypted {kind} (password-protected ZIP); index an unprotected copy")
    return archive


def read_member(archive: zipfile.ZipFile, name: str, kind: str) -> bytes:
    try:
        return archive.read(name)
    except KeyError:
        raise Unreadable(f"not a valid {kind}: {name} is missing from it") from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise Unreadable(f"damaged {kind} ({name} cannot be read: {e}); re-save it") from None


def read_xml(archive: zipfile.ZipFile, name: str, kind: str):
    """A member that is XML written by the document's author (ODT's content.xml, EPUB's package
    files), parsed without entity expansion (defusedxml): its root element."""
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    try:
        return ElementTree.fromstring(read_member(archive, name, kind))
    except (ElementTree.ParseError, DefusedXmlException) as e:
        raise Unreadable(f"damaged {kind} ({name} is not well-formed XML: {e}); re-save it") from None
