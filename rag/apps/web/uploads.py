"""Uploaded documents: checked (type, size, text content) before they reach the documents folder."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from rag.errors import InputError
from rag.ingest.loaders import SUPPORTED_SUFFIXES, content_problem

UPLOAD_SUFFIXES = sorted(SUPPORTED_SUFFIXES)
_SAFE_NAME = re.compile(r"[^\w.\- ]+", re.UNICODE)


def save_upload(path: Path, docs_dir: Path, max_file_mb: float) -> str:
    """Check an uploaded file (type, size, text content) and copy it into docs_dir; its name."""
    original = Path(getattr(path, "orig_name", None) or path.name)
    name = _SAFE_NAME.sub("_", original.name).strip(" .") or "document"
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(f"{original.name} is not a supported file; upload {', '.join(UPLOAD_SUFFIXES)} files")
    size = path.stat().st_size
    if size > max_file_mb * 1_000_000:
        raise InputError(f"{original.name} is larger than {max_file_mb:g} MB; split it or raise RAG_MAX_FILE_MB")
    data = path.read_bytes()
    if not data.strip():
        raise InputError(f"{original.name} is empty; upload a file with text in it")
    # The same check the indexer makes: binary where text is expected, or another format than the
    # name says (a PDF, DOCX, ODT or EPUB is binary and fine).
    problem = content_problem(suffix, data)
    if problem:
        raise InputError(f"{original.name}: {problem}; upload {', '.join(UPLOAD_SUFFIXES)} files")
    target = docs_dir / name
    tmp = docs_dir / f".{name}.upload"
    shutil.copyfile(path, tmp)
    os.replace(tmp, target)  # the indexer never sees a half-written file
    return name
