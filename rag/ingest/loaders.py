"""Find and read the documents of a folder: .txt, .md and .html, as plain text."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import InputError
from rag.schema import Document

TEXT_SUFFIXES = {".txt", ".text", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES


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


def find_files(root: Path, skipped: list[tuple[str, str]] | None = None) -> list[Path]:
    """Supported files under root, recursively, in a stable order (a folder's files, then its
    sub-folders). The walk is iterative: os.walk recurses and raised RecursionError on folders
    nested about a thousand deep. Symlinked folders are not followed, so a symlink loop cannot
    recurse forever; they and unreadable folders are reported in `skipped` instead of vanishing."""
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
            elif path.suffix.lower() in SUPPORTED_SUFFIXES:
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
            return _too_large(max_bytes)
        try:
            data = f.read(max_bytes + 1)  # +1: the file may have grown since fstat
        except OSError as e:
            return f"unreadable ({e.strerror or e})"
    return _too_large(max_bytes) if len(data) > max_bytes else data


def _too_large(max_bytes: int) -> str:
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


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) first; otherwise the most likely legacy encoding."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        # A BOM promises UTF-16; an odd length or lone surrogate must not abort the whole run.
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if not matches:
        return data.decode("cp1252", errors="replace")
    best = matches[0]
    # Short texts often fit several single-byte code pages equally well; Windows-1252 (a superset
    # of Latin-1) is by far the most common of them, so it wins any tie.
    for m in matches:
        if m.chaos <= best.chaos and "cp1252" in m.could_be_from_charset:
            return data.decode("cp1252", errors="replace")
    return str(best)


def html_to_text(html: str) -> tuple[str, str | None]:
    """Visible text of an HTML page (scripts, styles and other non-content dropped) and its title."""
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    tree = HTMLParser(html)
    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node else None
    tree.strip_tags(["script", "style", "noscript", "template", "svg", "iframe", "object", "head"])
    body = tree.body or tree.root
    text = body.text(separator="\n", strip=False) if body else ""
    return text, title or None


_BLANK_RUNS = re.compile(r"[ \t\r\f\v]*\n[ \t\r\f\v\n]*\n")
_SPACES = re.compile(r"[ \t\f\v\r]+")


def normalize_whitespace(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\u00a0", " ")
    text = _BLANK_RUNS.sub("\n\n", text)
    text = _SPACES.sub(" ", text)
    return "\n".join(line.strip() for line in text.split("\n")).strip()


def to_document(src: SourceFile) -> Document:
    text = decode(src.data)
    title = None
    # Plain text keeps its characters exactly, so a citation's span indexes the decoded file itself;
    # HTML spans index the extracted text.
    text = text.replace("\r\n", "\n")
    if src.path.suffix.lower() in HTML_SUFFIXES:
        text, title = html_to_text(text)
        text = normalize_whitespace(text)
    if title is None:
        first = text.split("\n", 1)[0].lstrip("# ").strip()
        title = first[:120] if first else src.path.stem
    return Document(path=src.rel, title=title, text=text)


def load_documents(root: Path, max_file_mb: float = 20.0) -> LoadReport:
    """Read every supported file under root; binary, empty and oversized files are skipped with a reason."""
    report = LoadReport()
    for src in read_sources(root, int(max_file_mb * 1_000_000), report):
        if not src.data.strip():
            report.skipped.append((src.rel, "empty"))
            continue
        if looks_binary(src.data):
            report.skipped.append((src.rel, "binary content, not text"))
            continue
        try:
            doc = to_document(src)
        except Exception as e:  # one undecodable file must not stop the other files from being indexed
            report.skipped.append((src.rel, f"could not be read as text ({type(e).__name__}: {e})"))
            continue
        if not doc.text.strip():
            report.skipped.append((src.rel, "no text after extraction"))
            continue
        report.documents.append(doc)
        report.hashes[src.rel] = src.sha256
    return report
