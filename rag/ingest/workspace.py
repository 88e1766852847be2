"""The work in progress of `rag index`, on disk beside the index (INDEX/.wip/): the chunks and vectors
of each embedded file are appended there and then recorded, so an interrupted run resumes where it
stopped instead of embedding every file again, and the build never holds the folder's text in memory.

Files: chunks.jsonl (one chunk a line), vectors.f32 (float32 rows, row i is line i), files.jsonl (one
record a line, written after the rows it names are on disk: a record is the commit of its file) and
key.json (the settings the rows were made with; other settings discard the folder). The live index is
never touched here: rag.ingest.store still publishes a complete generation with one rename, and the
folder is removed once that is done.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from rag.schema import Chunk

WIP = ".wip"


def chunk_line(chunk: Chunk) -> str:
    # Provenance a format has not (a .txt has no page) is left out, as in the index's chunks.jsonl.
    return json.dumps({k: v for k, v in asdict(chunk).items() if v is not None}, ensure_ascii=False) + "\n"


def unfinished_embedder(index_dir: Path) -> str | None:
    """The embedder of a build that was interrupted in index_dir (its work in progress), or None."""
    try:
        return json.loads((Path(index_dir) / WIP / "key.json").read_text(encoding="utf-8")).get("embedder")
    except (OSError, ValueError, AttributeError):
        return None


class Workspace:
    """Committed files by relative path: {"rel", "sha256", "size", "mtime_ns", "title", "chunks",
    "row", "byte", "byte_end"} (rows and byte offsets into chunks.jsonl and vectors.f32)."""

    def __init__(self, index_dir: Path, key: dict, dim: int):
        self.folder = Path(index_dir) / WIP
        self.dim = dim
        self.records: dict[str, dict] = {}
        key_file = self.folder / "key.json"
        try:
            same = json.loads(key_file.read_text(encoding="utf-8")) == key
        except (OSError, ValueError):
            same = False
        if not same:
            self.discard()
            self.folder.mkdir(parents=True)
            key_file.write_text(json.dumps(key), encoding="utf-8")
        self._open()

    def _open(self) -> None:
        rows, size = 0, 0
        try:
            with open(self.folder / "files.jsonl", encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            lines = []
        vec_rows = _size(self.folder / "vectors.f32") // (4 * self.dim)
        chunk_bytes = _size(self.folder / "chunks.jsonl")
        kept = []
        for line in lines:
            try:
                rec = json.loads(line)
                end_row, end_byte = rec["row"] + rec["chunks"], rec["byte_end"]
            except (ValueError, KeyError, TypeError):
                break  # a record cut by a crash: it and anything after it never happened
            if end_row > vec_rows or end_byte > chunk_bytes:
                break  # its rows did not reach the disk
            kept.append(line)
            self.records[rec["rel"]] = rec
            rows, size = end_row, end_byte
        # Rows written after the last commit belong to a file that was never finished: cut them off.
        with open(self.folder / "vectors.f32", "ab") as f:
            f.truncate(rows * 4 * self.dim)
        with open(self.folder / "chunks.jsonl", "ab") as f:
            f.truncate(size)
        (self.folder / "files.jsonl").write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        self.rows, self.bytes = rows, size
        self._chunks = open(self.folder / "chunks.jsonl", "ab")
        self._vectors = open(self.folder / "vectors.f32", "ab")
        self._files = open(self.folder / "files.jsonl", "a", encoding="utf-8")

    def append(self, files: list[tuple[dict, list[Chunk]]], vectors: np.ndarray) -> None:
        """Commit files (entry, chunks) whose vectors are `vectors`, in order: rows first, fsynced,
        then the records that make them count."""
        records = []
        at = 0
        for entry, chunks in files:
            start_row, start_byte = self.rows, self.bytes
            for c in chunks:
                self.bytes += self._chunks.write(chunk_line(c).encode("utf-8"))
            self._vectors.write(np.ascontiguousarray(vectors[at : at + len(chunks)], dtype=np.float32).tobytes())
            at += len(chunks)
            self.rows += len(chunks)
            records.append({**entry, "chunks": len(chunks), "row": start_row, "byte": start_byte, "byte_end": self.bytes})
        for f in (self._chunks, self._vectors):
            f.flush()
            os.fsync(f.fileno())
        for rec in records:
            self._files.write(json.dumps(rec, ensure_ascii=False) + "\n")
            self.records[rec["rel"]] = rec
        self._files.flush()

    def chunks(self, rec: dict) -> list[Chunk]:
        with open(self.folder / "chunks.jsonl", "rb") as f:
            f.seek(rec["byte"])
            data = f.read(rec["byte_end"] - rec["byte"]).decode("utf-8")
        return [Chunk(**json.loads(line)) for line in data.splitlines() if line]

    def vectors(self, rec: dict) -> np.ndarray:
        with open(self.folder / "vectors.f32", "rb") as f:
            f.seek(rec["row"] * 4 * self.dim)
            data = f.read(rec["chunks"] * 4 * self.dim)
        return np.frombuffer(data, dtype=np.float32).reshape(-1, self.dim)

    def close(self) -> None:
        for f in (getattr(self, "_chunks", None), getattr(self, "_vectors", None), getattr(self, "_files", None)):
            if f is not None:
                f.close()

    def discard(self) -> None:
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
