"""Plain frozen records passed between the stages of the pipeline."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Span:
    """Where a stretch of a document's text sits in the original: its page (PDF, 1-based) and the
    heading path it falls under ("3 Installation > 3.2 Disks"), for citations."""

    start: int
    end: int
    page: int | None = None
    section: str | None = None


@dataclass(frozen=True)
class Document:
    path: str  # relative to the indexed folder, with forward slashes
    title: str
    text: str
    spans: tuple[Span, ...] = ()  # pages and sections, each kind in text order; none for a plain .txt
    # One-line remarks for whoever indexes it (PDF pages left out because they are only images).
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chunk:
    id: str
    source: str
    start: int  # character offsets into the document's extracted text
    end: int
    text: str
    # Provenance, absent in indexes written before it existed: the page the chunk starts on, the page
    # it ends on when that is another one, and the heading path it falls under (a heading starts a chunk).
    page: int | None = None
    page_end: int | None = None
    section: str | None = None


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float
    rank: int  # 1-based, after fusion
    dense_score: float | None = None
    lexical_score: float | None = None


@dataclass(frozen=True)
class Citation:
    n: int
    source: str
    start: int
    end: int
    text: str
    page: int | None = None
    page_end: int | None = None
    section: str | None = None

    @property
    def location(self) -> str:
        return location(self.source, self.page, self.page_end, self.section)


# Joins a section label's headings, outermost first ("Chapter 3 > 3.2 Disks"): the loaders write it,
# citations and the heading test read the innermost title after the last one.
SECTION_SEPARATOR = " > "
# Between a table row's cells, the row being one line (the Word, OpenDocument and HTML loaders).
CELL_SEPARATOR = " | "


def is_row(line: str) -> bool:
    """The line is a table's row as the loaders write it (a shell pipeline "ls | less" reads as one too)."""
    return CELL_SEPARATOR in line


def permalink_sign(text: str) -> bool:
    """text could be a heading's permalink ("¶" in Sphinx and MkDocs, "#"): one or two signs, no letter
    or digit. The HTML loader leaves it out of section labels; rag.retrieval.ranking.is_heading allows
    for it at the end of a heading's line."""
    return 0 < len(text) <= 2 and not any(c.isalnum() for c in text)


def location(source: str, page: int | None = None, page_end: int | None = None, section: str | None = None) -> str:
    """How a citation names its place: "report.pdf, p. 12-13, §3.2 Disks" (the innermost heading)."""
    out = [source]
    if page is not None:
        out.append(f"p. {page}-{page_end}" if page_end and page_end != page else f"p. {page}")
    if section:
        out.append("§" + section.rsplit(SECTION_SEPARATOR, 1)[-1])
    return ", ".join(out)


@dataclass(frozen=True)
class Answer:
    question: str
    text: str
    refused: bool
    citations: tuple[Citation, ...]
    retrieved: tuple[Hit, ...]
    model: str
    timings: dict = field(default_factory=dict)
    language: str = "en"
    standalone_question: str | None = None
    # How the final answer was made: "direct" (the model's own, kept), "quote" or "refusal", and the
    # answer check that turned the model's answer down ("model" when it refused by itself).
    outcome: str | None = None
    decided_by: str | None = None
    checks_failed: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """The `rag ask --json` object; the web API returns the same."""
        out = {
            "question": self.question,
            "answer": self.text,
            "refused": self.refused,
            "citations": [{**asdict(c), "location": c.location} for c in self.citations],
            "retrieved": [
                {
                    "rank": h.rank,
                    "source": h.chunk.source,
                    "chunk_id": h.chunk.id,
                    "start": h.chunk.start,
                    "end": h.chunk.end,
                    "score": round(h.score, 6),
                    "text": h.chunk.text,
                    "page": h.chunk.page,
                    "page_end": h.chunk.page_end,
                    "section": h.chunk.section,
                }
                for h in self.retrieved
            ],
            "model": self.model,
            "language": self.language,
            "timings": self.timings,
        }
        if self.standalone_question and self.standalone_question != self.question:
            out["standalone_question"] = self.standalone_question
        if self.outcome is not None:
            out["outcome"] = self.outcome
            out["decided_by"] = self.decided_by
            out["checks_failed"] = list(self.checks_failed)
        return out


class Embedder(Protocol):
    """What indexing and search need of an embedder (rag.retrieval.embedders has the real one and a fake)."""

    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32 (n, dim), rows L2-normalised."""
