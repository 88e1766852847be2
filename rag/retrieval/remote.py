"""Embeddings from an OpenAI-compatible server's /v1/embeddings (llama.cpp's server with
--embedding, vLLM, Ollama, TEI) instead of the in-process ONNX model, and the choice between the two.

The index records its embedder's name ("remote:<model id>"), and loading an index with another
embedder is refused (rag.ingest.store.load_generation): vectors of two models are not comparable.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from rag.config import Settings
from rag.errors import ModelError, RemoteError
from rag.schema import Embedder

if TYPE_CHECKING:  # httpx takes 0.17 s to import: the one-laptop case never pays for it
    from rag.endpoints import Endpoint

# Texts per request: big enough to amortise the round trip, small enough for any server's batch limit.
BATCH = 64
PREFIX = "remote:"


class RemoteEmbedder:
    """A model on an embedding server; vectors L2-normalised as the index expects. Thread-safe."""

    def __init__(self, endpoint: Endpoint, model: str = ""):
        self.endpoint = endpoint
        models = [m.get("id") for m in endpoint.get("/v1/models").get("data") or [] if isinstance(m, dict)]
        models = [m for m in models if m]
        if model and model not in models and models:
            raise ModelError(f"{endpoint.what} at {endpoint.base} has no model {model!r}; it serves {', '.join(models[:5])} "
                             "(set RAG_EMBED_MODEL to one)")
        if not model and not models:
            raise ModelError(f"{endpoint.what} at {endpoint.base} lists no model on /v1/models; load one into it")
        self.model = model or models[0]
        self.name = PREFIX + self.model.rsplit("/", 1)[-1]
        self._dim: int | None = None
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        """The vectors' width, asked of the server once (one short text embedded)."""
        if self._dim is None:
            with self._lock:
                if self._dim is None:
                    self._dim = int(self._request(["dimension"]).shape[1])
        return self._dim

    def embed(self, texts: list[str], batch_size: int = BATCH, **_) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [self._request(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
        out = np.concatenate(parts).astype(np.float32)
        if self._dim is None:
            self._dim = out.shape[1]
        elif out.shape[1] != self._dim:
            raise RemoteError(f"{self.endpoint.what} at {self.endpoint.base} changed its vectors' width "
                              f"({self._dim} -> {out.shape[1]}); is another model loaded?")
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def _request(self, texts: list[str]) -> np.ndarray:
        # Some servers reject an empty input; a space embeds as "nothing" all the same.
        body = {"model": self.model, "input": [t if t.strip() else " " for t in texts], "encoding_format": "float"}
        data = self.endpoint.post("/v1/embeddings", body).get("data")
        try:
            rows = sorted(data, key=lambda d: d.get("index", 0))
            vectors = [row["embedding"] for row in rows]
        except (TypeError, KeyError, AttributeError):
            vectors = None
        if vectors and isinstance(vectors[0], list) and vectors[0] and isinstance(vectors[0][0], list):
            # A causal model served without pooling answers with one vector per token.
            raise RemoteError(f"{self.endpoint.what} at {self.endpoint.base} returned a vector per token, not per text; "
                              "give the server a pooling type (llama.cpp: --kv_overrides <arch>.pooling_type=int:1)")
        try:
            vectors = np.asarray(vectors, dtype=np.float32) if vectors is not None else None
        except ValueError:
            vectors = None
        if vectors is None or vectors.ndim != 2 or len(vectors) != len(texts):
            raise RemoteError(f"{self.endpoint.what} at {self.endpoint.base} did not return one vector per text on "
                              "/v1/embeddings; is it an embedding model (llama.cpp: start it with --embedding true)?")
        return vectors


def embedder_for(settings: Settings) -> Embedder:
    """The embedder settings ask for: the embedding server at RAG_EMBED_URL, else the local model."""
    if settings.embed_url:
        from rag.endpoints import Endpoint

        endpoint = Endpoint(settings.embed_url, settings.embed_api_key, settings.remote_timeout_s,
                            what="the embedding server", setting="RAG_EMBED_URL")
        return RemoteEmbedder(endpoint, settings.embed_model)
    from rag.retrieval.embedders import make_embedder

    return make_embedder(settings.embedder, settings.cache_dir, settings.n_threads)


def built_embedder(index_dir) -> str | None:
    """The embedder the live index at index_dir was built with, or None (no index, or unreadable:
    reported where the index is loaded)."""
    import json

    from rag.errors import RagError
    from rag.ingest.store import live_generation

    try:
        gen = live_generation(index_dir)
        return json.loads((gen / "manifest.json").read_text(encoding="utf-8")).get("embedder") if gen else None
    except (RagError, OSError, ValueError, AttributeError):
        return None


def embedder_for_index(settings: Settings) -> Embedder:
    """The embedder to answer from settings.index_dir with: embedder_for(settings), except that an
    index built by another bundled embedder (MiniLM's float or int8 graph, multilingual e5) is
    queried with that one: an index made before the default changed keeps answering until `rag
    index` rebuilds it, and one built with `--embedder` needs no flag on every question."""
    import dataclasses

    from rag.retrieval.embedders import BUNDLED

    if not settings.embed_url and settings.embedder in BUNDLED:
        built = built_embedder(settings.index_dir)
        if built in BUNDLED:
            settings = dataclasses.replace(settings, embedder=built)
    return embedder_for(settings)
