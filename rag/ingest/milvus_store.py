"""Dense vectors in Milvus instead of FAISS (`RAG_VECTOR_STORE=milvus`), the optional store for an
index shared by several app replicas or larger than one machine (docs/serving.md).

`pymilvus` speaks the same protocol to the embedded milvus-lite (a path ending in .db; the default is
INDEX/milvus.db) and to a Milvus server or cluster (`RAG_MILVUS_URI=http://host:19530`), so this code
is the same for both. Each generation of the index writes its own collection, named after the index
folder and the generation, and the manifest records it; `rag index` drops the collections of older
generations once the new one is live. Chunks and BM25 stay in the index folder, and so do the
vectors (vectors.npy): an update re-uses them instead of embedding again, and the bench's exact
search reads them. FAISS stays the default: nothing here is imported unless Milvus is chosen.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.errors import ConfigError, IndexIncompatibleError, RemoteError

STORES = ("faiss", "milvus")
DEFAULT_LITE = "milvus.db"  # milvus-lite's folder inside the index folder
INSERT_BATCH = 5_000
# Index types this module knows the search parameters of; milvus-lite builds them with FAISS per
# segment of 100k rows, a Milvus server with knowhere. `rag bench --scale-index N --scale-store milvus`
# measures them (docs/performance.md, "A million passages").
INDEXES = {
    "HNSW": ({"M": 16, "efConstruction": 80}, {"ef": 128}),
    "IVF_SQ8": ({"nlist": 1024}, {"nprobe": 32}),
    "IVF_FLAT": ({"nlist": 1024}, {"nprobe": 32}),
    "FLAT": ({}, {}),
}
INSTALL = "install the optional store with `pip install -e '.[milvus]'` (pymilvus and milvus-lite)"


@dataclass(frozen=True)
class VectorStore:
    """Where `rag index` writes the vectors and searches them: "faiss" (files in the index folder,
    the default) or "milvus" at uri ("" = milvus-lite in the index folder)."""

    kind: str = "faiss"
    uri: str = ""
    token: str = ""
    index: str = "HNSW"

    @classmethod
    def from_settings(cls, settings) -> "VectorStore":
        kind = settings.vector_store.strip().lower()
        if kind not in STORES:
            raise ConfigError(f"RAG_VECTOR_STORE={settings.vector_store!r} is not one of {', '.join(STORES)}; fix or unset it")
        index = settings.milvus_index.strip().upper()
        if index not in INDEXES:
            raise ConfigError(f"RAG_MILVUS_INDEX={settings.milvus_index!r} is not one of {', '.join(INDEXES)}; fix or unset it")
        uri = settings.milvus_uri.strip()
        if uri.endswith(".db") and "://" not in uri:  # a milvus-lite path: recorded whole, as any folder may open it
            uri = str(Path(uri).expanduser().resolve())
        return cls(kind, uri, settings.milvus_token, index)

    def resolved_uri(self, index_dir: Path) -> str:
        return self.uri or str(Path(index_dir).resolve() / DEFAULT_LITE)


_CLIENTS: dict[tuple[str, str], object] = {}


def client(uri: str, token: str = ""):
    """One MilvusClient per URI and process (milvus-lite serves a folder to one process at a time)."""
    key = (uri, token)
    if key in _CLIENTS:
        return _CLIENTS[key]
    # gRPC's C core logs to stderr (milvus-lite's server asks the client to ping less: "too_many_pings");
    # failures still reach us as exceptions, said in one line below.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise ConfigError(f"RAG_VECTOR_STORE=milvus needs pymilvus; {INSTALL}") from None
    if not uri.startswith(("http://", "https://", "tcp://", "unix:")) and not uri.endswith(".db"):
        raise ConfigError(f"RAG_MILVUS_URI={uri!r} is neither a milvus-lite path ending in .db nor an http:// URI; fix it")
    # milvus-lite logs a traceback when its folder is locked; the error below says it in one line.
    import logging

    logging.getLogger("milvus_lite").addHandler(logging.NullHandler())
    try:
        c = MilvusClient(uri=uri, token=token) if token else MilvusClient(uri=uri)
    except Exception as e:
        if uri.endswith(".db"):
            raise RemoteError(f"cannot open milvus-lite at {uri}: another process has it open (a `rag serve` or "
                              "`rag ask`?); stop it, or use a Milvus server for several processes (RAG_MILVUS_URI=http://…)") from None
        raise RemoteError(f"cannot reach Milvus at {uri} ({_first_line(e)}); start the server or fix RAG_MILVUS_URI") from None
    _CLIENTS[key] = c
    return c


def release(uri: str, token: str = "") -> None:
    """Close this process's client of uri; a milvus-lite folder is then free for another process."""
    c = _CLIENTS.pop((uri, token), None)
    if c is not None:
        c.close()
    if uri.endswith(".db"):
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(uri)


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def collection_prefix(index_dir: Path) -> str:
    """Collections of one index folder share this prefix (several indexes may share a cluster)."""
    return f"rag_{zlib.crc32(str(Path(index_dir).resolve()).encode()):08x}_"


def write_collection(store: VectorStore, index_dir: Path, name: str, vectors: np.ndarray, skip: np.ndarray | None = None) -> str:
    """Create collection `name` holding vectors (ids = rows, but the rows in skip) with the store's
    index; returns its kind."""
    from pymilvus import DataType, MilvusClient

    c = client(store.resolved_uri(index_dir), store.token)
    n, dim = vectors.shape
    try:
        if c.has_collection(name):
            c.drop_collection(name)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(dim))
        params = c.prepare_index_params()
        params.add_index(field_name="vector", index_type=store.index, metric_type="IP", params=INDEXES[store.index][0])
        c.create_collection(name, schema=schema)
        # Not waited for: the collection is empty, and the wait asks for a timestamp milvus-lite does not serve.
        c.create_index(name, params, sync=False)
        for at in range(0, n, INSERT_BATCH):
            block = np.ascontiguousarray(vectors[at : at + INSERT_BATCH], dtype=np.float32)
            dead = set(skip[(skip >= at) & (skip < at + len(block))].tolist()) if skip is not None and len(skip) else ()
            c.insert(name, [{"id": at + i, "vector": v} for i, v in enumerate(block) if at + i not in dead])
        c.flush(name)
    except Exception as e:
        raise RemoteError(f"writing the vectors to Milvus at {store.resolved_uri(index_dir)} failed ({_first_line(e)}); "
                          "check the server and run `rag index` again") from None
    return f"milvus-{store.index.lower()}"


def drop_stale(store: VectorStore, index_dir: Path, keep: str) -> None:
    """Drop this index folder's collections other than keep (older generations)."""
    c = client(store.resolved_uri(index_dir), store.token)
    prefix = collection_prefix(index_dir)
    for name in c.list_collections():
        if name.startswith(prefix) and name != keep:
            c.drop_collection(name)


class MilvusDense:
    """A Milvus collection searched like a FAISS index: search(queries, k) -> (scores, ids), ids the
    index's rows, -1 where fewer than k were found."""

    def __init__(self, store: VectorStore, index_dir: Path, collection: str, dim: int, rows: int, recorded_uri: str):
        self.uri, self.collection, self.d = store.resolved_uri(index_dir), collection, dim
        self._client = client(self.uri, store.token)
        if not self._client.has_collection(collection):
            where = f" (it was written to {recorded_uri})" if recorded_uri and recorded_uri != self.uri else ""
            raise IndexIncompatibleError(f"Milvus at {self.uri} has no collection {collection}{where}; set RAG_MILVUS_URI "
                                         f"to the server it was written to or rebuild the index with `rag index --rebuild`")
        self._client.load_collection(collection)
        self.ntotal = int(self._client.get_collection_stats(collection)["row_count"])
        if self.ntotal != rows:
            raise IndexIncompatibleError(f"Milvus collection {collection} at {self.uri} holds {self.ntotal} vectors, the index "
                                         f"{rows}; rebuild it with `rag index --rebuild`")
        described = self._client.describe_index(collection, "vector") or {}
        self.index_type = str(described.get("index_type", "")).upper()
        self.params = dict(INDEXES.get(self.index_type, ({}, {}))[1])

    def search(self, queries: np.ndarray, k: int):
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        ids = np.full((len(queries), k), -1, np.int64)
        if k <= 0 or not len(queries):
            return scores, ids
        try:
            found = self._client.search(self.collection, data=[q for q in queries], anns_field="vector", limit=k,
                                        output_fields=["id"], search_params={"metric_type": "IP", "params": self.params})
        except Exception as e:
            raise RemoteError(f"searching Milvus at {self.uri} failed ({_first_line(e)}); check the server or RAG_MILVUS_URI") from None
        for r, hits in enumerate(found):
            for j, hit in enumerate(list(hits)[:k]):
                ids[r, j], scores[r, j] = int(hit["id"]), float(hit["distance"])
        return scores, ids
