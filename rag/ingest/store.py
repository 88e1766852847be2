"""The on-disk index: FAISS vectors, BM25, chunks and a versioned manifest, written atomically.

Layout: index/CURRENT names the live generation folder (index/gen-<time>/). A build writes a new
generation completely, fsyncs it, then replaces CURRENT in one rename; a crash at any point leaves
the previous generation live and loadable.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rag.errors import IndexCorruptError, IndexIncompatibleError, IndexMissingError
from rag.ingest import large
from rag.ingest.bm25 import LexicalIndex
from rag.ingest.milvus_store import MilvusDense, VectorStore, collection_prefix, drop_stale, write_collection
from rag.schema import Chunk

FORMAT_VERSION = 1
CURRENT = "CURRENT"


@dataclass(frozen=True)
class Manifest:
    format_version: int
    embedder: str
    dim: int
    chunk_tokens: int
    chunk_overlap: int
    language: str
    n_chunks: int
    files: dict[str, dict]  # rel path -> {"sha256": ..., "chunks": n, "title": ...}
    docs_dir: str = ""
    built_at: float = field(default_factory=time.time)
    faiss_index: str = "flat-ip"
    # File (relative to the generation) -> [size, CRC-32] of every other file of the generation, so a
    # damaged byte is reported instead of silently changing answers. Empty in older indexes.
    checksums: dict[str, list[int]] = field(default_factory=dict)
    # rag.ingest.chunking.CHUNKER_VERSION of the build (indexes written before it existed were version 1).
    chunker_version: int = 1
    # Where the vectors are searched (rag.ingest.milvus_store): "faiss" (vectors.faiss here) or
    # "milvus", in collection vector_collection at vector_uri ("" = milvus-lite in the index folder).
    vector_store: str = "faiss"
    vector_collection: str = ""
    vector_uri: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, ensure_ascii=False)


@dataclass
class IndexData:
    manifest: Manifest
    chunks: list[Chunk]
    vectors: np.ndarray  # float32 (n, dim), normalised
    faiss: object
    lexical: LexicalIndex
    path: Path
    # A large generation (rag.ingest.large): chunks and vectors are read from disk by row as they
    # are used, and this holds its rows, base_rows and nlist. None for the small, in-memory layout.
    layout: dict | None = None


# Exact search reads every vector: about 0.15 ms per 1,000 chunks here (15 ms at 100k, docs/performance.md).
# From this size on an HNSW graph is used instead: under a millisecond at 100k. Below it exact search
# stays: it costs at most 3 ms and can miss nothing.
HNSW_MIN_CHUNKS = 20_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
# `rag bench --retrieval-scale 100000`: at 100k chunks efSearch 128 returned 0.85 of the exact top-4
# passages for the eval questions (their documents are a small cluster far from the rest, the hard
# case for a graph), 512 returned 0.93 and 1024 0.97 for 2.4 ms: passages that reach the prompt are
# worth two milliseconds.
HNSW_EF_SEARCH = 1024


# Files checked by their whole CRC-32 each time an index is opened; larger ones (a large index's
# vectors and chunks, gigabytes) by their size only, so opening reads no file whole. `rag index`
# checks every byte before it reuses an index.
OPEN_CRC_MAX_BYTES = 64 << 20


def faiss_kind(n_vectors: int) -> str:
    if n_vectors >= large.LARGE_MIN_CHUNKS:
        return large.kind_for(n_vectors)
    return f"hnsw{HNSW_M}" if n_vectors >= HNSW_MIN_CHUNKS else "flat-ip"


def build_faiss(vectors: np.ndarray, kind: str | None = None):
    import faiss

    kind = kind or faiss_kind(len(vectors))
    if kind.startswith("hnsw"):
        index = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        index = faiss.IndexFlatIP(vectors.shape[1])
    if len(vectors):
        index.add(vectors)
    return index


def live_generation(index_dir: Path) -> Path | None:
    """The generation folder CURRENT names, None when there is no index yet."""
    pointer = Path(index_dir) / CURRENT
    for _ in range(3):
        try:
            name = pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise IndexCorruptError(f"index pointer {pointer} is unreadable ({e}); rebuild it with `rag index --rebuild`") from None
        # Only a bare generation name: a pointer edited to "../elsewhere" must not load another folder.
        if not _GENERATION.fullmatch(name):
            raise IndexCorruptError(f"index pointer {pointer} does not name a generation; rebuild it with `rag index --rebuild`")
        gen = Path(index_dir) / name
        if gen.is_dir():
            return gen
        # A writer may have moved the pointer and removed this generation since it was read.
    raise IndexCorruptError(f"index pointer {pointer} names {name}, which is missing; rebuild it with `rag index --rebuild`")


_GENERATION = re.compile(r"gen-\d+")


def read_manifest(gen: Path) -> Manifest:
    try:
        raw = json.loads((gen / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise IndexCorruptError(f"index manifest in {gen} is unreadable ({e}); rebuild it with `rag index --rebuild`") from None
    if not isinstance(raw, dict):
        raise IndexCorruptError(f"index manifest in {gen} is not a JSON object; rebuild it with `rag index --rebuild`")
    if raw.get("format_version") != FORMAT_VERSION:
        raise IndexIncompatibleError(
            f"index in {gen.parent} has format version {raw.get('format_version')}, this rag reads {FORMAT_VERSION}; "
            "rebuild it with `rag index --rebuild`"
        )
    try:
        manifest = Manifest(**raw)
    except TypeError as e:
        raise IndexCorruptError(f"index manifest in {gen} is malformed ({e}); rebuild it with `rag index --rebuild`") from None
    if not isinstance(manifest.checksums, dict) or not all(
            isinstance(v, list) and len(v) == 2 for v in manifest.checksums.values()):
        raise IndexCorruptError(f"index manifest in {gen} has malformed checksums; rebuild it with `rag index --rebuild`")
    return manifest


def load_manifest(index_dir: Path) -> Manifest | None:
    gen = live_generation(index_dir)
    return None if gen is None else read_manifest(gen)


def load_index(index_dir: Path, embedder_name: str | None = None, store: VectorStore | None = None) -> IndexData:
    """The live generation; given a store (the settings' choice), an index whose vectors another
    store holds is refused with the fix. Without one, the manifest's store is opened."""
    index_dir = Path(index_dir)
    for attempt in range(3):
        gen = live_generation(index_dir)
        if gen is None:
            raise IndexMissingError(f"no index in {index_dir}; run `rag index` first (or pass --index DIR)")
        try:
            return load_generation(gen, embedder_name, store)
        except IndexCorruptError:
            # A concurrent `rag index` may have published a new generation and removed this one
            # while it was being read: that is not damage, read the new one.
            if attempt == 2 or live_generation(index_dir) == gen:
                raise
    raise AssertionError("unreachable")


def load_generation(gen: Path, embedder_name: str | None = None, store: VectorStore | None = None) -> IndexData:
    index_dir = gen.parent
    manifest = read_manifest(gen)
    if store is not None and store.kind != manifest.vector_store:
        hint = f" RAG_MILVUS_URI={manifest.vector_uri}" if manifest.vector_uri else ""
        raise IndexIncompatibleError(
            f"index in {index_dir} keeps its vectors in {manifest.vector_store}, not {store.kind}; set "
            f"RAG_VECTOR_STORE={manifest.vector_store}{hint} or rebuild it with `rag index --rebuild`")
    if embedder_name is not None and manifest.embedder != embedder_name:
        # Remote embedders are named "remote:<model>" (rag.retrieval.remote): the other fix is the URL.
        other = " (or set RAG_EMBED_URL to the server that built it)" if manifest.embedder.startswith("remote:") else ""
        raise IndexIncompatibleError(
            f"index in {index_dir} was built with embedder {manifest.embedder!r}, not {embedder_name!r}; "
            f"rebuild it with `rag index --rebuild`{other}"
        )
    damaged = damaged_files(gen, manifest.checksums, OPEN_CRC_MAX_BYTES)
    if damaged:
        raise IndexCorruptError(f"index in {index_dir} is damaged ({', '.join(damaged[:3])} changed since it was written); "
                                "rebuild it with `rag index --rebuild`")
    milvus = _open_milvus(gen, manifest, store) if manifest.vector_store == "milvus" else None
    if large.is_large(gen):
        try:
            chunks, vectors, dense, lexical, layout = large.open_generation(gen, manifest.language, milvus)
        except Exception as e:
            raise IndexCorruptError(f"index in {index_dir} is damaged ({type(e).__name__}: {e}); rebuild it with `rag index --rebuild`") from None
        if len(chunks) - len(lexical.deleted) != manifest.n_chunks or dense.d != manifest.dim:
            raise IndexCorruptError(f"index in {index_dir} is inconsistent (chunks, vectors and manifest disagree); rebuild it with `rag index --rebuild`")
        return IndexData(manifest, chunks, vectors, dense, lexical, gen, layout)
    try:
        import faiss

        chunks = [Chunk(**json.loads(line)) for line in (gen / "chunks.jsonl").read_text(encoding="utf-8").splitlines() if line]
        if milvus is not None:
            index, vectors = milvus, np.load(gen / "vectors.npy")
        else:
            index = faiss.read_index(str(gen / "vectors.faiss"))
            if isinstance(index, faiss.IndexHNSW):
                index.hnsw.efSearch = HNSW_EF_SEARCH  # a search-time setting: the current one applies
            vectors = index.reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, manifest.dim), np.float32)
        lexical = LexicalIndex.load(gen / "bm25", manifest.language)
    except Exception as e:  # any unreadable piece means the same fix
        raise IndexCorruptError(f"index in {index_dir} is damaged ({type(e).__name__}: {e}); rebuild it with `rag index --rebuild`") from None
    if not (len(chunks) == index.ntotal == len(vectors) == manifest.n_chunks) or index.d != manifest.dim:
        raise IndexCorruptError(f"index in {index_dir} is inconsistent (chunks, vectors and manifest disagree); rebuild it with `rag index --rebuild`")
    return IndexData(manifest, chunks, np.asarray(vectors, dtype=np.float32), index, lexical, gen)


def _open_milvus(gen: Path, manifest: Manifest, store: VectorStore | None):
    """The generation's Milvus collection; the settings' URI first, else the one it was written to."""
    uri = (store.uri if store is not None and store.uri else "") or manifest.vector_uri
    store = VectorStore("milvus", uri, store.token if store is not None else "")
    rows = manifest.n_chunks  # the live rows: a large generation's deleted ones are not in the collection
    return MilvusDense(store, gen.parent, manifest.vector_collection, manifest.dim, rows, manifest.vector_uri)


def file_checksum(path: Path) -> list[int]:
    """[size, CRC-32]: CRC-32 runs at several GB/s, so checking on every load costs little."""
    crc, size = 0, 0
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            crc = zlib.crc32(block, crc)
            size += len(block)
    return [size, crc]


def generation_checksums(gen: Path) -> dict[str, list[int]]:
    return {p.relative_to(gen).as_posix(): file_checksum(p) for p in sorted(gen.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def damaged_files(gen: Path, checksums: dict[str, list[int]], size_only_from: int | None = None) -> list[str]:
    """Files whose size or CRC-32 changed; from size_only_from bytes on, only the size is compared."""
    out = []
    for rel, expected in checksums.items():
        try:
            if size_only_from is not None and expected[0] > size_only_from:
                if (gen / rel).stat().st_size != expected[0]:
                    out.append(rel)
            elif file_checksum(gen / rel) != list(expected):
                out.append(rel)
        except OSError:
            out.append(rel)
    return out


def _fsync_tree(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_index(index_dir: Path, manifest: Manifest, chunks: list[Chunk], vectors: np.ndarray, lexical: LexicalIndex,
               store: VectorStore | None = None) -> Path:
    """Write a new generation and make it live atomically; returns its folder. With a Milvus store the
    vectors go to a new collection of it (and to vectors.npy) instead of FAISS."""
    import faiss

    if store is not None and store.kind == "milvus":
        return _save_milvus(index_dir, manifest, chunks, vectors, lexical, store)

    def write(tmp: Path) -> str:
        kind = faiss_kind(len(vectors))
        if kind != large.kind_for(len(vectors)):
            with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
                for c in chunks:
                    # Provenance a format has not (a .txt has no page) is left out: old readers never see it.
                    f.write(json.dumps({k: v for k, v in asdict(c).items() if v is not None}, ensure_ascii=False) + "\n")
            faiss.write_index(build_faiss(vectors, kind), str(tmp / "vectors.faiss"))
            lexical.save(tmp / "bm25")
            return kind
        return large.write_generation(tmp, chunks, vectors, lexical)

    return publish_generation(index_dir, manifest, write)


def _save_milvus(index_dir: Path, manifest: Manifest, chunks, vectors: np.ndarray, lexical: LexicalIndex, store: VectorStore) -> Path:
    def write(tmp: Path):
        collection = collection_prefix(index_dir) + tmp.name.strip(".").removesuffix(".tmp").replace("-", "_")
        if len(vectors) >= large.LARGE_MIN_CHUNKS:
            large.write_generation(tmp, chunks, vectors, lexical, ivf=False)
        else:
            with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
                for c in chunks:
                    f.write(json.dumps({k: v for k, v in asdict(c).items() if v is not None}, ensure_ascii=False) + "\n")
            np.save(tmp / "vectors.npy", np.asarray(vectors, np.float32))
            lexical.save(tmp / "bm25")
        kind = write_collection(store, index_dir, collection, vectors)
        return kind, {"vector_store": "milvus", "vector_collection": collection, "vector_uri": store.uri}

    gen = publish_generation(index_dir, manifest, write)
    drop_stale(store, index_dir, keep=read_manifest(gen).vector_collection)
    return gen


def publish_generation(index_dir: Path, manifest: Manifest, write) -> Path:
    """Make a new generation whose files write(folder) writes (returning the FAISS kind, or the kind
    and more manifest fields) live atomically."""
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    name = f"gen-{time.time_ns()}"
    tmp = index_dir / f".{name}.tmp"
    tmp.mkdir()
    written = write(tmp)
    kind, store = written if isinstance(written, tuple) else (written, {})
    store = {"vector_store": "faiss", "vector_collection": "", "vector_uri": "", **store}
    manifest = dataclasses.replace(manifest, faiss_index=kind, **store, checksums=generation_checksums(tmp))
    # The manifest goes last: a generation with a manifest is complete.
    (tmp / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
    _fsync_tree(tmp)
    gen = index_dir / name
    os.rename(tmp, gen)
    pointer_tmp = index_dir / f".{CURRENT}.{os.getpid()}.tmp"
    pointer_tmp.write_text(name + "\n")
    with open(pointer_tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(pointer_tmp, index_dir / CURRENT)
    _fsync_tree_dir(index_dir)
    remove_stale(index_dir, keep=name)
    return gen


def _fsync_tree_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale(index_dir: Path, keep: str) -> None:
    """Drop old generations and leftovers of interrupted builds."""
    for p in Path(index_dir).iterdir():
        if p.name == keep or p.name == CURRENT:
            continue
        if p.name.startswith(("gen-", ".gen-")) and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.name.startswith(f".{CURRENT}.") and p.is_file():
            p.unlink(missing_ok=True)


def update_large_index(index_dir: Path, old: IndexData, files: dict[str, dict], added: dict[str, tuple[list[Chunk], np.ndarray]]) -> Path:
    """A new generation of a large index with the folder's file records `files`: the files of `added`
    (new or changed, with their chunks and vectors) appended, those gone or changed deleted; FAISS is
    updated in place and BM25 gets a delta (rag.ingest.large). Returns the new generation."""
    if old.layout is None:
        raise ValueError("update_large_index needs a large index")
    records, rows, remove_rows, new_chunks, new_vectors = {}, old.layout["rows"], [], [], []
    for rel, prev in old.manifest.files.items():
        if rel not in files or rel in added:
            remove_rows.extend(range(prev["row"], prev["row"] + prev["chunks"]))
    for rel, rec in files.items():
        if rel in added:
            chunks, vectors = added[rel]
            records[rel] = {**rec, "chunks": len(chunks), "row": rows + len(new_chunks)}
            new_chunks += chunks
            new_vectors.append(np.asarray(vectors, np.float32))
        else:
            records[rel] = {**rec, "row": old.manifest.files[rel]["row"]}
    vectors = np.vstack(new_vectors) if new_vectors else np.zeros((0, old.manifest.dim), np.float32)
    manifest = dataclasses.replace(old.manifest, files=records, built_at=time.time(),
                                   n_chunks=old.manifest.n_chunks - len(remove_rows) + len(new_chunks))
    return publish_generation(index_dir, manifest, lambda tmp: large.update_generation(
        tmp, old.path, np.asarray(remove_rows, np.int64), new_chunks, vectors, old.manifest.language))
