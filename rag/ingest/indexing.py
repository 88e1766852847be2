"""Build or update the index of a folder: only new or changed files are embedded again.

A file whose size and modification time are those recorded in the index is not read at all (an
unchanged folder of 1,000 files is checked in well under a second, `rag bench --index`); one whose
stamp changed is hashed, and parsed only when its bytes changed. New files are parsed and chunked in
a background thread (rag.ingest.pipeline) while the embedder runs on batches of EMBED_BATCH chunks,
whose vectors go to INDEX/.wip/ as each file is finished (rag.ingest.workspace): an interrupted run
resumes there, and the new generation is published atomically by rag.ingest.store at the end.
"""

from __future__ import annotations

import fcntl
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from rag.config import Settings
from rag.errors import IndexCorruptError, IndexIncompatibleError, IndexMissingError, InputError
from rag.ingest.bm25 import LexicalIndex
from rag.ingest.chunking import CHUNKER_VERSION
from rag.ingest.loaders import find_files
from rag.ingest.pipeline import Parsed, Planned, parse_file, parsed_in_background
from rag.ingest import large
from rag.ingest.milvus_store import VectorStore, drop_stale
from rag.ingest.store import (FORMAT_VERSION, IndexData, Manifest, damaged_files, live_generation, load_index, read_manifest,
                              save_index, update_large_index)
from rag.ingest.workspace import Workspace
from rag.schema import Chunk, Embedder
from rag.text.lexical import detect_corpus_language

Progress = Callable[[int, int], None]  # (done, total) files looked at
# Chunks embedded per call: the embedder sorts them by length, so a batch of its own is padded little.
EMBED_BATCH = 256


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
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (file, what of it was left out), indexed anyway
    seconds: float = 0.0
    path: Path | None = None
    planned: int = 0  # files read this run (new, or whose size or modification time changed)
    looked_at: int = 0
    stages: dict = field(default_factory=lambda: {"list": 0.0, "read": 0.0, "parse": 0.0, "chunk": 0.0,
                                                   "embed": 0.0, "write": 0.0})


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


def no_text_message(docs_dir: Path, skipped: list[tuple[str, str]]) -> str:
    """One line: why nothing could be indexed, including why files were skipped (the CLI prints
    per-file warnings only after a successful build)."""
    if not skipped:
        return f"no indexable text in {docs_dir}; add .txt, .md, .html, .pdf, .docx, .odt or .epub files there"
    shown = "; ".join(f"{rel}: {reason}" for rel, reason in skipped[:3])
    more = f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    return (f"no indexable text in {docs_dir}: {len(skipped)} file(s) skipped ({shown}{more}); "
            "fix them or add .txt, .md, .html, .pdf, .docx, .odt or .epub files there")


def previous_manifest(settings: Settings, embedder: Embedder, rebuild: bool) -> Manifest | None:
    """The live index's manifest when its vectors can be reused with these settings and its files
    are intact (CRC-32 of each, cheap); None means every file is embedded again."""
    if rebuild:
        return None
    try:
        gen = live_generation(settings.index_dir)
        if gen is None:
            return None
        manifest = read_manifest(gen)
        if (manifest.embedder, manifest.dim, manifest.chunk_tokens, manifest.chunk_overlap, manifest.chunker_version) != (
                embedder.name, embedder.dim, settings.chunk_tokens, settings.chunk_overlap, CHUNKER_VERSION):
            return None
        return None if damaged_files(gen, manifest.checksums) else manifest
    except (IndexIncompatibleError, IndexCorruptError):
        return None  # rebuilt from scratch below; the broken one is replaced atomically


def list_folder(root: Path, stats: IndexStats) -> list[Planned]:
    """Every supported file with its size and modification time: a stat each, no reading."""
    out = []
    for path in find_files(root, stats.skipped):
        rel = path.relative_to(root).as_posix()
        try:
            st = path.stat()
        except OSError:  # reading it says why (a broken link, no permission) in the skipped list
            out.append(Planned(rel, path, -1, -1))
            continue
        out.append(Planned(rel, path, st.st_size, st.st_mtime_ns))
    return out


def build_index(settings: Settings, embedder: Embedder, rebuild: bool = False, progress: Progress | None = None,
                stats: IndexStats | None = None) -> IndexStats:
    """Index settings.docs_dir into settings.index_dir. `stats` (optional) is filled as the build goes,
    for a progress display; `progress(done, total)` counts the files read this run."""
    t0 = time.perf_counter()
    stats = stats if stats is not None else IndexStats()
    store = VectorStore.from_settings(settings)
    root = Path(settings.docs_dir)
    listing = list_folder(root, stats)
    stats.stages["list"] = time.perf_counter() - t0
    index_dir = Path(settings.index_dir)
    with writer_lock(index_dir):
        manifest = previous_manifest(settings, embedder, rebuild)
        old_files = manifest.files if manifest else {}
        key = {"embedder": embedder.name, "dim": embedder.dim, "chunk_tokens": settings.chunk_tokens,
               "chunk_overlap": settings.chunk_overlap, "chunker_version": CHUNKER_VERSION}
        wip = Workspace(index_dir, key, embedder.dim)
        try:
            files = _update(settings, embedder, listing, old_files, wip, stats, progress)
            stats.removed = sorted(set(old_files) - set(files))
            stats.files = len(files)
            same_store = manifest and (manifest.vector_store, manifest.vector_uri) == (store.kind, store.uri if store.kind == "milvus" else "")
            if same_store and not stats.added and not stats.changed and not stats.removed and files == old_files:
                stats.chunks = manifest.n_chunks  # nothing to write: the live generation is this folder
                stats.path = live_generation(index_dir)
            else:
                try:
                    old = load_index(index_dir, embedder.name) if manifest else None
                except (IndexCorruptError, IndexIncompatibleError, IndexMissingError):
                    # Damaged between the check and now: the new files are kept in .wip, the rest is redone.
                    wip.close()
                    return build_index(settings, embedder, rebuild=True, progress=progress, stats=_fresh(stats))
                t_write = time.perf_counter()
                _publish(settings, embedder, files, old, wip, stats, store)
                if manifest and manifest.vector_store == "milvus" and store.kind != "milvus":
                    drop_stale(VectorStore("milvus", manifest.vector_uri, settings.milvus_token), index_dir, keep="")
                stats.stages["write"] = time.perf_counter() - t_write
            wip.discard()
        finally:
            wip.close()
    stats.seconds = time.perf_counter() - t0
    return stats


def _fresh(stats: IndexStats) -> IndexStats:
    return IndexStats(skipped=[])


def _update(settings: Settings, embedder: Embedder, listing: list[Planned], old_files: dict, wip: Workspace,
            stats: IndexStats, progress: Progress | None) -> dict[str, dict]:
    """The index's file records for the folder: unchanged ones as they were, the others read, parsed
    and embedded into the workspace (those an interrupted run finished are taken from it)."""
    files: dict[str, dict] = {}
    planned = []
    for p in listing:
        prev = old_files.get(p.rel)
        if prev and prev.get("size") == p.size and prev.get("mtime_ns") == p.mtime_ns:
            files[p.rel] = prev
            stats.unchanged += 1
        else:
            planned.append(p)
            files[p.rel] = {}  # keeps the folder's order; filled below
    stats.planned = len(planned)

    def known(rel: str, sha: str) -> bool:
        prev, rec = old_files.get(rel), wip.records.get(rel)
        return bool((prev and prev["sha256"] == sha) or (rec and rec["sha256"] == sha))

    def work(p: Planned) -> Parsed:
        return parse_file(p, int(settings.max_file_mb * 1_000_000), known, settings.chunk_tokens, settings.chunk_overlap)

    pending: list[tuple[dict, list[Chunk]]] = []

    def embed_pending() -> None:
        texts = [c.text for _, chunks in pending for c in chunks]
        t = time.perf_counter()
        vectors = embedder.embed(texts) if texts else np.zeros((0, embedder.dim), np.float32)
        stats.stages["embed"] += time.perf_counter() - t
        wip.append(pending, vectors)
        stats.embedded_chunks += len(texts)
        for entry, chunks in pending:
            files[entry["rel"]] = {k: entry[k] for k in ("sha256", "title", "size", "mtime_ns")} | {"chunks": len(chunks)}
            stats.looked_at += 1
            if progress:
                progress(stats.looked_at, stats.planned)
        pending.clear()

    waiting = 0
    for item in parsed_in_background(planned, work):
        p = item.planned
        for stage, secs in item.seconds.items():
            stats.stages[stage] += secs
        prev, rec = old_files.get(p.rel), wip.records.get(p.rel)
        if item.kind == "skip":
            stats.skipped.append((p.rel, item.reason))
            del files[p.rel]
        elif item.kind == "same" and prev and prev["sha256"] == item.sha256:
            files[p.rel] = {**prev, "size": p.size, "mtime_ns": p.mtime_ns}  # touched, not changed
            stats.unchanged += 1
        elif item.kind == "same":  # embedded by an interrupted run
            files[p.rel] = {k: rec[k] for k in ("sha256", "title", "chunks")} | {"size": p.size, "mtime_ns": p.mtime_ns}
            (stats.changed if prev else stats.added).append(p.rel)
        else:
            entry = {"rel": p.rel, "sha256": item.sha256, "title": item.title, "size": p.size, "mtime_ns": p.mtime_ns}
            stats.warnings.extend((p.rel, w) for w in item.warnings)
            pending.append((entry, item.chunks))
            waiting += len(item.chunks)
            (stats.changed if prev else stats.added).append(p.rel)
            if waiting >= EMBED_BATCH:
                embed_pending()
                waiting = 0
            continue
        stats.looked_at += 1
        if progress:
            progress(stats.looked_at, stats.planned)
    embed_pending()
    return files


def _publish(settings: Settings, embedder: Embedder, files: dict[str, dict], old: IndexData | None, wip: Workspace,
             stats: IndexStats, store: VectorStore) -> None:
    """Write the new generation: each file's chunks and vectors, from the old index or the workspace,
    in the folder's order."""
    fresh = {rel for rel in files if rel in wip.records and wip.records[rel]["sha256"] == files[rel]["sha256"]}
    if old is not None and old.layout is not None and old.manifest.vector_store == store.kind == "faiss":
        # A large index: a few files change in place (rag.ingest.large); many, and it is rebuilt below.
        gone = [rel for rel in old.manifest.files if rel not in files or rel in fresh]
        if not large.needs_rebuild(old.layout, len(old.lexical.deleted), sum(old.manifest.files[r]["chunks"] for r in gone),
                                   sum(files[r]["chunks"] for r in fresh)):
            added = {rel: (wip.chunks(wip.records[rel]), wip.vectors(wip.records[rel])) for rel in files if rel in fresh}
            stats.path = update_large_index(settings.index_dir, old, files, added)
            stats.chunks = sum(f["chunks"] for f in files.values())
            return
    old_rows: dict[str, list[int]] = {}
    if old is not None and old.layout is not None:
        old_rows = {rel: list(range(f["row"], f["row"] + f["chunks"])) for rel, f in old.manifest.files.items()}
    elif old:
        for i, c in enumerate(old.chunks):
            old_rows.setdefault(c.source, []).append(i)

    def file_chunks(rel: str) -> list[Chunk]:
        if rel in fresh:
            return wip.chunks(wip.records[rel])
        return [old.chunks[i] for i in old_rows.get(rel, [])]

    def all_chunks():
        for rel in files:
            yield from file_chunks(rel)

    n = sum(files[rel]["chunks"] for rel in files)
    if n == 0:
        raise InputError(no_text_message(settings.docs_dir, stats.skipped))
    vectors = np.zeros((n, embedder.dim), np.float32)
    at = 0
    for rel in files:
        part = wip.vectors(wip.records[rel]) if rel in fresh else old.vectors[old_rows.get(rel, [])]
        if len(part) != files[rel]["chunks"]:
            raise IndexCorruptError(f"index in {settings.index_dir} is inconsistent ({rel}); rebuild it with `rag index --rebuild`")
        vectors[at : at + len(part)] = part
        at += len(part)
    # The corpus language from the start of the first 200 files, as detect_corpus_language reads documents.
    sample = []
    for rel in list(files)[:200]:
        text = ""
        for c in file_chunks(rel):
            text += c.text + "\n"
            if len(text) >= 5000:
                break
        sample.append(text)
    language = detect_corpus_language(sample)
    if n >= large.LARGE_MIN_CHUNKS:  # rows of each file, for updates in place
        at = 0
        for rel in files:
            files[rel] = {k: v for k, v in files[rel].items() if k != "row"} | {"row": at}
            at += files[rel]["chunks"]
    else:
        files = {rel: {k: v for k, v in f.items() if k != "row"} for rel, f in files.items()}
    lexical = LexicalIndex.build((c.text for c in all_chunks()), language)
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        embedder=embedder.name,
        dim=embedder.dim,
        chunk_tokens=settings.chunk_tokens,
        chunk_overlap=settings.chunk_overlap,
        language=language,
        n_chunks=n,
        files=files,
        docs_dir=str(Path(settings.docs_dir).resolve()),
        chunker_version=CHUNKER_VERSION,
    )
    stats.path = save_index(settings.index_dir, manifest, all_chunks(), vectors, lexical, store)
    stats.chunks = n
