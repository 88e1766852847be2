"""Build or update the index of a folder: only new or changed files are embedded again."""

from __future__ import annotations

import fcntl
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from rag.config import Settings
from rag.errors import IndexCorruptError, IndexIncompatibleError, InputError
from rag.ingest.bm25 import LexicalIndex
from rag.ingest.chunking import CHUNKER_VERSION, chunk_document
from rag.ingest.loaders import load_documents
from rag.ingest.store import (
    FORMAT_VERSION,
    IndexData,
    Manifest,
    load_index,
    load_manifest,
    save_index,
)
from rag.schema import Embedder
from rag.text.lexical import detect_corpus_language

Progress = Callable[[int, int], None]  # (done, total) chunks embedded


@dataclass
class IndexStats:
    files: int = 0
    chunks: int = 0
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    embedded_chunks: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    path: Path | None = None


@contextmanager
def writer_lock(index_dir: Path):
    """One writer at a time per index folder; readers never wait."""
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        lock_file = open(index_dir / ".lock", "w")
    except OSError as e:
        raise InputError(f"cannot write the index in {index_dir} ({e.strerror or e}); pass --index DIR with a writable folder") from None
    with lock_file as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"another `rag index` is writing {index_dir}; wait for it to finish") from None
        yield


def reusable_index(settings: Settings, embedder: Embedder, rebuild: bool) -> IndexData | None:
    """The previous index, if its vectors can be reused with the current settings."""
    if rebuild:
        return None
    try:
        manifest = load_manifest(settings.index_dir)
        if manifest is None:
            return None
        if (manifest.embedder, manifest.dim, manifest.chunk_tokens, manifest.chunk_overlap, manifest.chunker_version) != (
            embedder.name, embedder.dim, settings.chunk_tokens, settings.chunk_overlap, CHUNKER_VERSION):
            return None
        return load_index(settings.index_dir, embedder.name)
    except (IndexIncompatibleError, IndexCorruptError):
        return None  # rebuilt from scratch below; the broken one is replaced atomically


def no_text_message(docs_dir: Path, skipped: list[tuple[str, str]]) -> str:
    """One line: why nothing could be indexed, including why files were skipped (the CLI prints
    per-file warnings only after a successful build)."""
    if not skipped:
        return f"no indexable text in {docs_dir}; add .txt, .md, .html, .pdf, .docx, .odt or .epub files there"
    shown = "; ".join(f"{rel}: {reason}" for rel, reason in skipped[:3])
    more = f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    return (f"no indexable text in {docs_dir}: {len(skipped)} file(s) skipped ({shown}{more}); "
            "fix them or add .txt, .md, .html, .pdf, .docx, .odt or .epub files there")


def build_index(settings: Settings, embedder: Embedder, rebuild: bool = False, progress: Progress | None = None) -> IndexStats:
    t0 = time.perf_counter()
    stats = IndexStats()
    report = load_documents(settings.docs_dir, settings.max_file_mb)
    stats.skipped = report.skipped
    with writer_lock(Path(settings.index_dir)):
        old = reusable_index(settings, embedder, rebuild)
        old_files = old.manifest.files if old else {}
        kept_rows: dict[str, list[int]] = {}
        if old:
            for i, c in enumerate(old.chunks):
                kept_rows.setdefault(c.source, []).append(i)

        chunks, vector_parts, to_embed, files = [], [], [], {}
        for doc in report.documents:
            sha = report.hashes[doc.path]
            prev = old_files.get(doc.path)
            if prev and prev["sha256"] == sha and doc.path in kept_rows:
                rows = kept_rows[doc.path]
                doc_chunks = [old.chunks[i] for i in rows]
                vector_parts.append(old.vectors[rows])
                stats.unchanged += 1
            else:
                doc_chunks = chunk_document(doc, settings.chunk_tokens, settings.chunk_overlap)
                vector_parts.append(None)  # filled after embedding, same position
                to_embed.append((len(vector_parts) - 1, doc_chunks))
                (stats.changed if prev else stats.added).append(doc.path)
            chunks.append(doc_chunks)
            files[doc.path] = {"sha256": sha, "chunks": len(doc_chunks), "title": doc.title}
        stats.removed = sorted(set(old_files) - set(files))

        total = sum(len(c) for _, c in to_embed)
        done = 0
        if progress:
            progress(0, total)
        for slot, doc_chunks in to_embed:
            vecs = []
            for b in range(0, len(doc_chunks), 64):
                batch = [c.text for c in doc_chunks[b : b + 64]]
                vecs.append(embedder.embed(batch))
                done += len(batch)
                if progress:
                    progress(done, total)
            vector_parts[slot] = np.concatenate(vecs) if vecs else np.zeros((0, embedder.dim), np.float32)

        flat = [c for cs in chunks for c in cs]
        vectors = np.concatenate(vector_parts).astype(np.float32) if vector_parts else np.zeros((0, embedder.dim), np.float32)
        if not flat:
            raise InputError(no_text_message(settings.docs_dir, report.skipped))
        language = detect_corpus_language([d.text for d in report.documents])
        lexical = LexicalIndex.build([c.text for c in flat], language)
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            embedder=embedder.name,
            dim=embedder.dim,
            chunk_tokens=settings.chunk_tokens,
            chunk_overlap=settings.chunk_overlap,
            language=language,
            n_chunks=len(flat),
            files=files,
            docs_dir=str(Path(settings.docs_dir).resolve()),
            chunker_version=CHUNKER_VERSION,
        )
        stats.path = save_index(settings.index_dir, manifest, flat, vectors, lexical)
    stats.files, stats.chunks, stats.embedded_chunks = len(files), len(flat), total
    stats.seconds = time.perf_counter() - t0
    return stats
