"""Hybrid search: dense (FAISS) and lexical (BM25) candidates fused by their normalised scores."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from rag.ingest.milvus_store import VectorStore
from rag.ingest.store import IndexData, live_generation, load_index
from rag.retrieval.embedders import EmbeddingMemo, embed_queries
from rag.schema import SECTION_SEPARATOR, Embedder, Hit

# Weight of the lexical side when the corpus knows every term of the query; it shrinks with the share
# it knows. An English question about French documents shares only its names with them, and BM25
# then ranks on one or two names: the embedder's view of the whole question counts for more.
LEXICAL_WEIGHT = 0.5
SOURCE_OVERFETCH = 10  # candidates fetched per passage wanted when searching one file
QUERY_MEMO = 64  # query vectors kept: the engine ranks sentences against the query it just searched
# Index rows the similarity of "any passage" is averaged over (unrelated_similarity): 256 dot products a question.
BASELINE_ROWS = 256


def score_fuse(rankings: list[list[tuple[int, float]]], weights: list[float]) -> list[tuple[int, float]]:
    """Weighted sum of each list's scores, min-max normalised over its candidates, best first.

    Rank fusion (RRF) forgets how far ahead a candidate is: a passage BM25 scores twice as high as
    any other, ranked tenth by the English-centric embedder of a French corpus, fell out of the top
    4 (measured with `rag eval --retrieval-only`: passages holding the answer 0.913 with RRF, 0.978
    with this). Bruch et al. (2023, "An Analysis of Fusion Functions for Hybrid Retrieval") found
    this convex combination better than RRF in and out of domain. An item missing from a list gets
    nothing from it, as its lowest candidate does."""
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights):
        if not ranking:
            continue
        lo, hi = min(s for _, s in ranking), max(s for _, s in ranking)
        for item, s in ranking:
            scores[item] = scores.get(item, 0.0) + weight * ((s - lo) / (hi - lo) if hi > lo else 1.0)
    return sorted(scores.items(), key=lambda kv: -kv[1])


class Retriever:
    def __init__(self, index_dir: Path, embedder: Embedder, candidates: int = 40, query_memo: int = QUERY_MEMO,
                 store: VectorStore | None = None):
        """store: the settings' vector store; an index whose vectors another store holds is refused
        (None opens the store the index's manifest names)."""
        self.index_dir = Path(index_dir)
        self.store = store
        self.embedder = embedder
        self.candidates = candidates
        self._data: IndexData | None = None
        self._titles: tuple[Path, dict[str, frozenset[str]]] | None = None  # by generation, see section_titles
        self._baseline: tuple[Path, np.ndarray] | None = None  # by generation, see unrelated_similarity
        self._lock = threading.Lock()
        self._queries = EmbeddingMemo(lambda texts: embed_queries(self.embedder, texts), query_memo)

    @property
    def data(self) -> IndexData:
        """The live index, reloaded when `rag index` has published a new generation."""
        with self._lock:
            gen = live_generation(self.index_dir)
            if self._data is None or gen is None or gen != self._data.path:
                self._data = load_index(self.index_dir, self.embedder.name, self.store)
            return self._data

    def section_titles(self, source: str) -> frozenset[str]:
        """The titles of a document's sections (the last part of each chunk's label), whitespace
        normalised, from the generation already loaded (never loading another mid-answer). Built once
        per generation from the in-memory chunk list; a large generation, whose chunks are read from
        disk by row, gets none: reading them all would cost seconds per million chunks."""
        data = self._data
        if data is None or data.layout is not None:
            return frozenset()
        memo = self._titles
        if memo is None or memo[0] != data.path:
            titles: dict[str, set[str]] = {}
            for chunk in data.chunks:
                if chunk.section:
                    titles.setdefault(chunk.source, set()).add(" ".join(chunk.section.rsplit(SECTION_SEPARATOR, 1)[-1].split()))
            memo = self._titles = (data.path, {k: frozenset(v) for k, v in titles.items()})
        return memo[1].get(source, frozenset())

    def unrelated_similarity(self, vector: np.ndarray) -> float:
        """The similarity a vector has to passages of the index in general: its mean over up to
        BASELINE_ROWS rows spread across the index (0.0 with no vectors at hand). An embedder's
        similarity of unrelated texts is not 0 (about 0.18 for MiniLM and 0.80 for multilingual e5
        on debian-de): what a passage has above this is what it has to do with the question."""
        data = self._data
        if data is None:
            return 0.0
        memo = self._baseline
        if memo is None or memo[0] != data.path:
            try:
                n = len(data.vectors)
                rows = np.asarray(data.vectors[np.unique(np.linspace(0, n - 1, min(n, BASELINE_ROWS)).astype(int))],
                                  dtype=np.float32) if n else np.zeros((0, 0), np.float32)
            except (TypeError, ValueError, IndexError):  # a store that keeps no vectors here
                rows = np.zeros((0, 0), np.float32)
            memo = self._baseline = (data.path, rows)
        rows = memo[1]
        return float((rows @ vector).mean()) if rows.size and rows.shape[1] == len(vector) else 0.0

    def query_vector(self, query: str) -> np.ndarray:
        """The query's embedding, memoised: sentence ranking uses the vector the search just made."""
        return self._queries.vectors([query])[0]

    def forget_queries(self) -> None:
        """Empty the query memo (rag bench times every question as a new one)."""
        self._queries.clear()

    def search(self, query: str, top_k: int, source: str | None = None) -> list[Hit]:
        """The top_k passages for the query; given a source, only that file's."""
        data = self.data
        n = len(data.chunks)
        if top_k <= 0 or n == 0:
            return []
        # Within one file, candidates are over-fetched from the whole index and filtered.
        cand = min(max(self.candidates, top_k) * (SOURCE_OVERFETCH if source else 1), n)
        dense_scores, dense_ids = data.faiss.search(self.query_vector(query)[None, :], cand)
        dense = [(int(i), float(s)) for i, s in zip(dense_ids[0], dense_scores[0]) if i >= 0]
        lexical = data.lexical.search(query, cand)
        if source is not None:
            dense = [(i, s) for i, s in dense if data.chunks[i].source == source]
            lexical = [(i, s) for i, s in lexical if data.chunks[i].source == source]
        w = LEXICAL_WEIGHT * data.lexical.known_share(query)
        fused = score_fuse([dense, lexical], [1.0 - w, w])[:top_k]
        dmap, lmap = dict(dense), dict(lexical)
        return [
            Hit(chunk=data.chunks[i], score=s, rank=r, dense_score=dmap.get(i), lexical_score=lmap.get(i))
            for r, (i, s) in enumerate(fused, start=1)
        ]
