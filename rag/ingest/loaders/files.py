"""Finding and reading the files of a folder: which to take, which to skip and why, and what their
bytes look like (text or binary, which container format), before any format's loader runs."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from rag.errors import InputError
from rag.schema import Document


class Unreadable(Exception):
    """A loader's one-line reason to skip a file (encrypted, damaged, no text layer, ...)."""


@dataclass(frozen=True)
class SourceFile:
    path: Path  # absolute
    rel: str  # relative to the indexed folder, forward slashes
    sha256: str
    data: bytes


@dataclass
class LoadReport:
    documents: list[Document] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)  # rel path -> sha256 of the raw bytes
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (rel path, reason)


def find_files(root: Path, skipped: list[tuple[str, str]] | None = None,
               suffixes: Iterable[str] | None = None) -> list[Path]:
    """Supported files under root, recursively, in a stable order (a folder's files, then its
    sub-folders). The walk is iterative: os.walk recurses and raised RecursionError on folders
    nested about a thousand deep. Symlinked folders are not followed, so a symlink loop cannot
    recurse forever; they and unreadable folders are reported in `skipped` instead of vanishing."""
    if suffixes is None:
        from rag.ingest.loaders.registry import SUPPORTED_SUFFIXES as suffixes
    suffixes = set(suffixes)
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"documents folder {root} does not exist; pass --docs DIR with your documents")
    found: list[Path] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            _note(skipped, root, folder, f"folder unreadable ({e.strerror or e})")
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                is_link, is_dir = entry.is_symlink(), entry.is_dir()
            except OSError as e:
                _note(skipped, root, path, f"unreadable ({e.strerror or e})")
                continue
            if is_dir and is_link:
                _note(skipped, root, path, "link to a folder, not followed (index the folder itself with --docs)")
            elif is_dir:
                subfolders.append(path)
            elif path.suffix.lower() in suffixes:
                found.append(path)
        stack.extend(reversed(subfolders))
    return found


def _note(skipped: list[tuple[str, str]] | None, root: Path, path: Path, reason: str) -> None:
    if skipped is not None:
        skipped.append((path.relative_to(root).as_posix() or ".", reason))


def read_file(path: Path, max_bytes: int) -> bytes | str:
    """The bytes of a regular file, or the reason it cannot be indexed. O_NONBLOCK and the fstat
    check mean a FIFO or device named like a document is refused instead of blocking forever."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return "broken link (its target does not exist)" if path.is_symlink() else "vanished while indexing"
    except OSError as e:
        return f"unreadable ({e.strerror or e}); check its permissions"
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file (a pipe, device or socket)"
        if st.st_size > max_bytes:
            return too_large(max_bytes)
        try:
            data = f.read(max_bytes + 1)  # +1: the file may have grown since fstat
        except OSError as e:
            return f"unreadable ({e.strerror or e})"
    return too_large(max_bytes) if len(data) > max_bytes else data


def too_large(max_bytes: int) -> str:
    return f"larger than {max_bytes / 1_000_000:g} MB (raise RAG_MAX_FILE_MB to index it)"


def read_sources(root: Path, max_bytes: int, report: LoadReport) -> list[SourceFile]:
    out = []
    root = Path(root)
    for p in find_files(root, report.skipped):
        rel = p.relative_to(root).as_posix()
        data = read_file(p, max_bytes)
        if isinstance(data, str):
            report.skipped.append((rel, data))
            continue
        out.append(SourceFile(p, rel, hashlib.sha256(data).hexdigest(), data))
    return out


def looks_binary(data: bytes) -> bool:
    sample = data[:8192]
    if b"\x00" in sample:
        # UTF-16 text has NULs too; it carries a BOM.
        return not sample.startswith((b"\xff\xfe", b"\xfe\xff"))
    control = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 27))
    return control > len(sample) * 0.1


def content_kind(data: bytes) -> str:
    """What the bytes are, whatever the file is called: "PDF", "ZIP", "HTML", "text" or "binary"."""
    head = data[:1024]
    # Readers accept the PDF header after some junk within the first 1 KB; a text merely quoting
    # "%PDF-" there is still text.
    if head.lstrip().startswith(b"%PDF-") or (b"%PDF-" in head and looks_binary(data)):
        return "PDF"
    if head.startswith(b"PK\x03\x04"):
        return "ZIP"
    if looks_binary(data):
        return "binary"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").lower().startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "HTML"
    return "text"
