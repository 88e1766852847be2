"""Ingest: from a folder to an index. Finding files, one loader per format, chunking with character
offsets, the BM25 half of the index, the on-disk store (atomic generations), the optional Milvus vector
store (milvus_store) and incremental indexing.

May import rag.text and the top-level records (config, schema, errors, artifacts); never retrieval,
generation, answer or the front ends. The embedder is passed in (rag.schema.Embedder)."""
