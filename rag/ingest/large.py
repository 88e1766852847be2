"""The index at scale (rag.ingest.store uses it from LARGE_MIN_CHUNKS chunks on): opening it reads no
file whole, and adding or removing a few files changes it in place instead of rebuilding it.

A large generation holds, beside manifest.json:
- chunks.jsonl and chunks.offsets.npy: row i is bytes offsets[i]:offsets[i+1], parsed when asked for;
- vectors.npy: the float32 vectors (rows, dim), memory-mapped; candidates are re-scored exactly from it;
- vectors.faiss: an IVF index with 8-bit scalar quantization whose ids are rows, its lists memory-mapped;
- bm25/: BM25 over rows [0, base_rows), memory-mapped; bm25-delta/: BM25 over the rows appended since,
  its scores put on the whole index's IDF scale;
- deleted.npy: rows of removed or changed files (gone from FAISS, zeroed in BM25);
- layout.json: rows, base_rows, nlist.
An update appends rows; when appended and deleted rows pass REBUILD_SHARE of them, the next update
rebuilds (rag.ingest.indexing), from the stored vectors: nothing is embedded again.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag.ingest.bm25 import LexicalIndex
from rag.schema import Chunk

LARGE_MIN_CHUNKS = 200_000
# `rag bench --scale-index 1000000` (docs/performance.md, "A million passages"): the probes and the
# candidates per wanted passage re-scored exactly that reach recall@10 >= 0.95 against exact search.
NPROBE = 32
REFINE = 4
REBUILD_SHARE = 0.1
TRAIN_PER_LIST = 64  # k-means training rows per inverted list (FAISS warns below 39)
ADD_BLOCK = 65_536


def nlist_for(n: int) -> int:
    """About 2·sqrt(n) lists, a power of two: 2048 at a million."""
    return 2 ** max(4, round(math.log2(2 * math.sqrt(max(n, 1)))))


def kind_for(n: int) -> str:
    return f"ivf{nlist_for(n)}-sq8"


def is_large(gen: Path) -> bool:
    return (Path(gen) / "layout.json").is_file()


def _random_access(mapped) -> None:
    """No read-ahead: rows are read a few at a time from anywhere, and the kernel's read-ahead around
    each would make most of a gigabyte file resident after a few hundred searches."""
    if hasattr(mapped, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        mapped.madvise(mmap.MADV_RANDOM)


class LazyChunks(Sequence):
    """The chunks of a generation by row, read from the memory-mapped chunks.jsonl when asked for."""

    def __init__(self, gen: Path):
        self._offsets = np.load(Path(gen) / "chunks.offsets.npy", mmap_mode="r")
        with open(Path(gen) / "chunks.jsonl", "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(f.fileno()).st_size else b""
        _random_access(self._map)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"chunk row {i} out of range")
        return Chunk(**json.loads(self._map[int(self._offsets[i]):int(self._offsets[i + 1])]))

    def __iter__(self):
        return (self[i] for i in range(len(self)))


class RowReader:
    """Rows of a float32 .npy file read with pread: re-scoring reads a few hundred rows a search from
    anywhere in 1.5 GB, and through a memory map the kernel maps the cached pages around each one
    too (`rag bench --scale-index`: a gigabyte of resident memory after 200 searches)."""

    def __init__(self, path: Path):
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            shape, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(f)
            self._start = f.tell()
        if dtype != np.float32 or len(shape) != 2:
            raise ValueError(f"{path} is not a float32 matrix")
        self.shape, self._row = shape, shape[1] * 4
        self._fd = os.open(path, os.O_RDONLY)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_RANDOM)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        data = b"".join(os.pread(self._fd, self._row, self._start + int(r) * self._row) for r in rows)
        return np.frombuffer(data, np.float32).reshape(len(rows), self.shape[1])

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)


class RefinedIVF:
    """An IVF index searched like a FAISS one: REFINE·k candidates from the quantized codes, re-scored
    with the exact vectors (an array or a RowReader), so quantization costs no recall among them."""

    def __init__(self, ivf, vectors, nprobe: int = NPROBE, refine: int = REFINE):
        self.ivf, self.vectors, self.refine = ivf, vectors, refine
        self.ivf.nprobe = nprobe
        self.ntotal, self.d = ivf.ntotal, ivf.d

    @property
    def nprobe(self) -> int:
        return self.ivf.nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self.ivf.nprobe = value

    def search(self, queries: np.ndarray, k: int):
        _, ids = self.ivf.search(np.ascontiguousarray(queries, dtype=np.float32), k * max(self.refine, 1))
        scores = np.full((len(queries), k), -np.inf, np.float32)
        out = np.full((len(queries), k), -1, np.int64)
        for r, (q, row) in enumerate(zip(queries, ids)):
            rows = np.unique(row[row >= 0])  # sorted: the pages of the mapped file in order
            if not len(rows):
                continue
            s = np.asarray(self.vectors[rows]) @ q
            top = np.argsort(-s, kind="stable")[:k]
            scores[r, : len(top)], out[r, : len(top)] = s[top], rows[top]
        return scores, out


class SegmentedLexical:
    """BM25 over the main rows and the appended ones, deleted rows scoring nothing; searched like a
    LexicalIndex."""

    def __init__(self, main: LexicalIndex, delta: LexicalIndex | None, base_rows: int, deleted: np.ndarray):
        self.main, self.delta, self.base_rows, self.deleted = main, delta, base_rows, deleted
        self.rows = base_rows + (delta.bm25.scores["num_docs"] if delta is not None else 0)
        self.dead = np.zeros(self.rows, bool)
        self.dead[deleted] = True
        self.lang = main.lang
        self.bm25 = main.bm25

    def _known(self, term: str) -> bool:
        return term in self.main.bm25.vocab_dict or (self.delta is not None and term in self.delta.bm25.vocab_dict)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The bm25s scores of LexicalIndex.search, summed from the query terms' posting lists: a
        question's terms list a small share of a million rows, so only those rows are scored (a
        dense array of every row, as bm25s makes, took most of the search's time)."""
        from rag.text.lexical import tokenize

        terms = tokenize(query, self.lang)
        if k <= 0 or not any(self._known(t) for t in terms):
            return []
        spans = []  # (index, row offset, start, end) of each known term's posting list
        for index, offset in ((self.main, 0), (self.delta, self.base_rows)):
            if index is not None:
                indptr = index.bm25.scores["indptr"]
                spans += [(index, offset, int(indptr[i]), int(indptr[i + 1]))
                          for i in (index.bm25.vocab_dict.get(t) for t in terms) if i is not None]
        if sum(end - start for _, _, start, end in spans) > self.rows // 8:
            # Long queries list most rows: bm25s's dense scores of every row are cheaper than sorting.
            parts = []
            for index, rows in ((self.main, self.base_rows), (self.delta, None)):
                if index is not None:
                    own = [t for t in terms if t in index.bm25.vocab_dict]
                    parts.append(index.bm25.get_scores(own) if own else np.zeros(rows or index.bm25.scores["num_docs"], np.float32))
            scores = np.concatenate(parts) if len(parts) > 1 else parts[0]
            scores[self.deleted] = 0
            k = min(k, len(scores))
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.argsort(-scores[top], kind="stable")]
            return [(int(i), float(scores[i])) for i in top if scores[i] > 0]
        idx = np.concatenate([np.asarray(ix.bm25.scores["indices"][a:b], np.int64) + off for ix, off, a, b in spans])
        val = np.concatenate([np.asarray(ix.bm25.scores["data"][a:b], np.float32) for ix, _, a, b in spans])
        val[self.dead[idx]] = 0
        cand, inverse = np.unique(idx, return_inverse=True)
        cand_scores = np.bincount(inverse, weights=val).astype(np.float32)
        keep = cand_scores > 0
        cand, cand_scores = cand[keep], cand_scores[keep]
        if not len(cand):
            return []
        k = min(k, len(cand))
        top = np.argpartition(-cand_scores, k - 1)[:k]
        top = top[np.argsort(-cand_scores[top], kind="stable")]
        return [(int(cand[i]), float(cand_scores[i])) for i in top]

    def known_share(self, query: str) -> float:
        from rag.text.lexical import tokenize

        terms = tokenize(query, self.lang)
        return sum(self._known(t) for t in terms) / len(terms) if terms else 0.0


def open_generation(gen: Path, language: str, dense=None):
    """(chunks, vectors, dense index, lexical index, layout) of a large generation, memory-mapped;
    dense given (a Milvus collection, rag.ingest.milvus_store), it replaces vectors.faiss."""
    import faiss

    gen = Path(gen)
    layout = json.loads((gen / "layout.json").read_text(encoding="utf-8"))
    chunks = LazyChunks(gen)
    vectors = np.load(gen / "vectors.npy", mmap_mode="r")  # for whole-index work: rebuilds, exact search
    ivf = dense or faiss.read_index(str(gen / "vectors.faiss"), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    main = LexicalIndex.load(gen / "bm25", language, mmap=True)
    delta = LexicalIndex.load(gen / "bm25-delta", language, mmap=True) if (gen / "bm25-delta").is_dir() else None
    deleted = np.load(gen / "deleted.npy") if (gen / "deleted.npy").is_file() else np.zeros(0, np.int64)
    if not (len(chunks) == len(vectors) == layout["rows"]) or ivf.ntotal != layout["rows"] - len(deleted):
        raise ValueError("chunks, vectors and FAISS disagree")
    dense = dense or RefinedIVF(ivf, RowReader(gen / "vectors.npy"))
    return chunks, vectors, dense, SegmentedLexical(main, delta, layout["base_rows"], deleted), layout


def _write_chunks(path: Path, chunks, offsets: list[int], mode: str = "w") -> None:
    from dataclasses import asdict

    with open(path, mode + "b") as f:
        at = offsets[-1]
        for c in chunks:
            line = (json.dumps({k: v for k, v in asdict(c).items() if v is not None}, ensure_ascii=False) + "\n").encode()
            f.write(line)
            at += len(line)
            offsets.append(at)


def build_ivf(vectors: np.ndarray):
    """IVF-SQ8 over the vectors (ids = rows), trained on a fixed sample of them."""
    import faiss

    n, d = vectors.shape
    nlist = nlist_for(n)
    ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(d), d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.niter = 10
    sample = np.sort(np.random.default_rng(0).choice(n, min(n, nlist * TRAIN_PER_LIST), replace=False))
    ivf.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
    for at in range(0, n, ADD_BLOCK):
        block = np.ascontiguousarray(vectors[at : at + ADD_BLOCK], dtype=np.float32)
        ivf.add_with_ids(block, np.arange(at, at + len(block), dtype=np.int64))
    return ivf


def write_generation(tmp: Path, chunks, vectors: np.ndarray, lexical: LexicalIndex, ivf: bool = True) -> str:
    """Write a large generation's files into tmp; returns its FAISS kind. ivf=False leaves out
    vectors.faiss (the vectors are searched in Milvus)."""
    import faiss

    offsets = [0]
    _write_chunks(tmp / "chunks.jsonl", chunks, offsets)
    np.save(tmp / "chunks.offsets.npy", np.asarray(offsets, np.int64))
    out = np.lib.format.open_memmap(tmp / "vectors.npy", mode="w+", dtype=np.float32, shape=vectors.shape)
    for at in range(0, len(vectors), ADD_BLOCK):
        out[at : at + ADD_BLOCK] = vectors[at : at + ADD_BLOCK]
    out.flush()
    del out
    if ivf:
        faiss.write_index(build_ivf(vectors), str(tmp / "vectors.faiss"))
    lexical.save(tmp / "bm25")
    (tmp / "layout.json").write_text(json.dumps({"rows": len(vectors), "base_rows": len(vectors), "nlist": nlist_for(len(vectors))}))
    return kind_for(len(vectors))


def needs_rebuild(layout: dict, deleted: int, removing: int, adding: int) -> bool:
    changed = (layout["rows"] - layout["base_rows"]) + deleted + removing + adding
    return changed > REBUILD_SHARE * layout["base_rows"]


def _link_tree(src: Path, dst: Path) -> None:
    """Hard links (the files of a generation are never written again), a copy where links fail."""
    dst.mkdir()
    for p in src.iterdir():
        try:
            os.link(p, dst / p.name)
        except OSError:
            shutil.copyfile(p, dst / p.name)


def delta_lexical(main: LexicalIndex, texts: list[str], lang: str) -> LexicalIndex:
    """BM25 of the appended rows with each term's IDF taken over main and appended rows together, so
    its scores add up with the main index's (bm25s's default Lucene IDF)."""
    delta = LexicalIndex.build(texts, lang)
    s, m = delta.bm25.scores, main.bm25.scores
    n_all = m["num_docs"] + s["num_docs"]
    inv = {i: t for t, i in delta.bm25.vocab_dict.items()}
    df = np.diff(s["indptr"]).astype(np.float64)
    mdf = np.diff(np.asarray(m["indptr"])).astype(np.float64)
    df_all = df + np.array([mdf[main.bm25.vocab_dict[inv[i]]] if inv.get(i) in main.bm25.vocab_dict else 0.0
                            for i in range(len(df))])

    def idf(n, d):
        return np.log(1 + (n - d + 0.5) / (d + 0.5))

    factor = np.where(df > 0, idf(n_all, df_all) / np.maximum(idf(s["num_docs"], df), 1e-9), 1.0)
    s["data"] = (np.asarray(s["data"]) * np.repeat(factor, np.diff(s["indptr"]).astype(np.int64))).astype(np.asarray(s["data"]).dtype)
    return delta


def update_generation(tmp: Path, old_gen: Path, remove_rows: np.ndarray, new_chunks: list[Chunk], new_vectors: np.ndarray,
                      lang: str) -> str:
    """Write into tmp the old large generation with remove_rows deleted and the new chunks appended
    (rows from the old row count on): FAISS gets add/remove in place, BM25 a new delta; nothing is
    re-trained or re-embedded."""
    import faiss

    old_gen = Path(old_gen)
    layout = json.loads((old_gen / "layout.json").read_text(encoding="utf-8"))
    rows, m = layout["rows"], len(new_chunks)
    shutil.copyfile(old_gen / "chunks.jsonl", tmp / "chunks.jsonl")
    offsets = np.load(old_gen / "chunks.offsets.npy").tolist()
    _write_chunks(tmp / "chunks.jsonl", new_chunks, offsets, mode="a")
    np.save(tmp / "chunks.offsets.npy", np.asarray(offsets, np.int64))
    old_vectors = np.load(old_gen / "vectors.npy", mmap_mode="r")
    out = np.lib.format.open_memmap(tmp / "vectors.npy", mode="w+", dtype=np.float32, shape=(rows + m, old_vectors.shape[1]))
    for at in range(0, rows, ADD_BLOCK):
        out[at : min(at + ADD_BLOCK, rows)] = old_vectors[at : at + ADD_BLOCK]
    out[rows:] = new_vectors
    out.flush()
    del out
    old_deleted = np.load(old_gen / "deleted.npy") if (old_gen / "deleted.npy").is_file() else np.zeros(0, np.int64)
    remove_rows = np.setdiff1d(np.asarray(remove_rows, np.int64), old_deleted)
    ivf = faiss.read_index(str(old_gen / "vectors.faiss"))
    if len(remove_rows):
        ivf.remove_ids(remove_rows)
    if m:
        ivf.add_with_ids(np.ascontiguousarray(new_vectors, dtype=np.float32), np.arange(rows, rows + m, dtype=np.int64))
    faiss.write_index(ivf, str(tmp / "vectors.faiss"))
    np.save(tmp / "deleted.npy", np.union1d(old_deleted, remove_rows).astype(np.int64))
    _link_tree(old_gen / "bm25", tmp / "bm25")
    base = layout["base_rows"]
    if rows + m > base:
        chunks = LazyChunks(tmp)
        main = LexicalIndex.load(old_gen / "bm25", lang, mmap=True)
        delta_lexical(main, [chunks[i].text for i in range(base, rows + m)], lang).save(tmp / "bm25-delta")
    (tmp / "layout.json").write_text(json.dumps({**layout, "rows": rows + m}))
    return kind_for(base)
