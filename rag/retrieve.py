"""Hybrid search: dense (FAISS) and lexical (BM25) candidates fused by reciprocal rank."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from rag.embedders import Embedder, EmbeddingMemo
from rag.schema import Hit
from rag.store import IndexData, live_generation, load_index

RRF_K = 60  # the constant from Cormack et al. (2009); damps the weight of top ranks
QUERY_MEMO = 64  # query vectors kept: the engine ranks sentences against the query it just searched


def rrf_fuse(rankings: list[list[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion of several ranked lists of ids, best first; ties keep first-seen order."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


class Retriever:
    def __init__(self, index_dir: Path, embedder: Embedder, candidates: int = 40, query_memo: int = QUERY_MEMO):
        self.index_dir = Path(index_dir)
        self.embedder = embedder
        self.candidates = candidates
        self._data: IndexData | None = None
        self._lock = threading.Lock()
        self._queries = EmbeddingMemo(lambda texts: self.embedder.embed(texts), query_memo)

    @property
    def data(self) -> IndexData:
        """The live index, reloaded when `rag index` has published a new generation."""
        with self._lock:
            gen = live_generation(self.index_dir)
            if self._data is None or gen is None or gen != self._data.path:
                self._data = load_index(self.index_dir, self.embedder.name)
            return self._data

    def query_vector(self, query: str) -> np.ndarray:
        """The query's embedding, memoised: sentence ranking uses the vector the search just made."""
        return self._queries.vectors([query])[0]

    def forget_queries(self) -> None:
        """Empty the query memo (rag bench times every question as a new one)."""
        self._queries.clear()

    def search(self, query: str, top_k: int) -> list[Hit]:
        data = self.data
        n = len(data.chunks)
        if top_k <= 0 or n == 0:
            return []
        cand = min(max(self.candidates, top_k), n)
        dense_scores, dense_ids = data.faiss.search(self.query_vector(query)[None, :], cand)
        dense = [(int(i), float(s)) for i, s in zip(dense_ids[0], dense_scores[0]) if i >= 0]
        lexical = data.lexical.search(query, cand)
        fused = rrf_fuse([[i for i, _ in dense], [i for i, _ in lexical]])[:top_k]
        dmap, lmap = dict(dense), dict(lexical)
        return [
            Hit(chunk=data.chunks[i], score=s, rank=r, dense_score=dmap.get(i), lexical_score=lmap.get(i))
            for r, (i, s) in enumerate(fused, start=1)
        ]
