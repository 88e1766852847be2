"""Retrieval: embedders (ONNX MiniLM), hybrid search over an index written by rag.ingest (dense
FAISS + BM25, scores fused) and the ranking of the retrieved passages' sentences.

May import rag.ingest, rag.text and the top-level records; never generation, answer or front ends."""
