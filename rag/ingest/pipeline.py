"""Files read, parsed and chunked in a background thread while the caller embeds what is ready.

A thread, not a process: the embedder spends its time inside ONNX Runtime, which releases the GIL,
and parsing the Python library reference is ~10 s of a ~4 min build (`rag bench --index`), so a
second process would only add pickling. The queue is bounded: a fast parser waits for the embedder
instead of holding the whole folder's text in memory.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from rag.ingest.chunking import chunk_document
from rag.ingest.loaders import SourceFile, load_document, read_file
from rag.schema import Chunk

QUEUE_FILES = 32


@dataclass
class Planned:
    """A file to look at: it is new, or its size or modification time changed."""

    rel: str
    path: Path
    size: int
    mtime_ns: int


@dataclass
class Parsed:
    """What the parser found: kind "same" (the bytes are those already indexed, or embedded by an
    interrupted run: `sha256` says which), "skip" (reason) or "new" (chunks)."""

    planned: Planned
    kind: str
    sha256: str = ""
    title: str = ""
    reason: str = ""
    chunks: list[Chunk] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)  # read / parse / chunk
    warnings: tuple[str, ...] = ()  # what the loader said of a file it read (pages it left out)


def parse_file(p: Planned, max_bytes: int, known: Callable[[str, str], bool], chunk_tokens: int, overlap: int) -> Parsed:
    import time

    t0 = time.perf_counter()
    data = read_file(p.path, max_bytes)
    if isinstance(data, str):
        return Parsed(p, "skip", reason=data)
    sha = hashlib.sha256(data).hexdigest()
    t1 = time.perf_counter()
    if known(p.rel, sha):
        return Parsed(p, "same", sha256=sha, seconds={"read": t1 - t0})
    doc = load_document(SourceFile(p.path, p.rel, sha, data))
    t2 = time.perf_counter()
    if isinstance(doc, str):
        return Parsed(p, "skip", reason=doc)
    chunks = chunk_document(doc, chunk_tokens, overlap)
    t3 = time.perf_counter()
    return Parsed(p, "new", sha256=sha, title=doc.title, chunks=chunks, warnings=doc.warnings,
                  seconds={"read": t1 - t0, "parse": t2 - t1, "chunk": t3 - t2})


def parsed_in_background(planned: list[Planned], work: Callable[[Planned], Parsed]) -> Iterator[Parsed]:
    """work(p) for each planned file, in order, computed by a thread QUEUE_FILES files ahead of the
    consumer. An error in the thread is raised here; leaving the loop early stops the thread."""
    q: queue.Queue = queue.Queue(maxsize=QUEUE_FILES)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for p in planned:
                if stop.is_set() or not put(work(p)):
                    return
            put(done)
        except BaseException as e:  # handed to the consumer, which raises it
            put(e)

    thread = threading.Thread(target=produce, name="rag-index-parser", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
