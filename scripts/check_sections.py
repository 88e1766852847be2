"""Check the section each chunk of an HTML file is cited under against the file itself.

    .venv/bin/python scripts/check_sections.py FILE.html... [--index DIR] [--show N]

For every chunk, the reference is the nearest heading (h1-h6) before the chunk's first character in
the HTML, found without rag's loader: the standard library's html.parser walks the markup, and the
chunk's text, whitespace removed, is searched in the page's visible text, whitespace removed (each
chunk after the start of the one before it, so a table of contents listing the same titles is
passed over). A chunk is a mismatch when the innermost heading of its section label is not that one.

Without --index the files are loaded and chunked by the current code (rag's default chunk size);
with --index the chunks stored in that index for files of the same name are checked.
Prints a line per file (chunks, mismatches, chunks not found in the page) and the totals.
"""

from __future__ import annotations

import argparse
import json
import sys
from html.parser import HTMLParser
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.config import Settings  # noqa: E402
from rag.ingest.chunking import chunk_document  # noqa: E402
from rag.ingest.loaders import decode, load_document  # noqa: E402
from rag.ingest.loaders.files import SourceFile  # noqa: E402
from rag.ingest.loaders.sections import clean_heading  # noqa: E402
from rag.ingest.store import live_generation  # noqa: E402
from rag.schema import Chunk  # noqa: E402

HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
HIDDEN = {"script", "style", "noscript", "template", "svg", "iframe", "object", "head", "title"}


class Page(HTMLParser):
    """The visible characters of a page, whitespace left out, each with the heading it comes after."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.chars: list[str] = []
        self.under: list[int] = []  # per character: index into titles, -1 before the first heading
        self.titles: list[str] = []
        self.hidden = 0
        self.open_heading: int | None = None

    def handle_starttag(self, tag, attrs):
        if tag in HIDDEN:
            self.hidden += 1
        elif tag in HEADINGS and not self.hidden:
            self.titles.append("")
            self.open_heading = len(self.titles) - 1

    def handle_endtag(self, tag):
        if tag in HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in HEADINGS:
            self.open_heading = None

    def handle_data(self, data):
        if self.hidden:
            return
        if self.open_heading is not None:
            self.titles[self.open_heading] += data
        current = len(self.titles) - 1
        for ch in data:
            if not ch.isspace():
                self.chars.append(ch)
                self.under.append(current)

    def heading_at(self, i: int) -> str | None:
        """The title of the nearest non-empty heading at or before character i."""
        h = self.under[i]
        while h >= 0 and not self.titles[h].split():
            h -= 1
        return clean_heading(self.titles[h]) if h >= 0 else None


def squeeze(text: str) -> str:
    return "".join(text.split())


def check(path: Path, chunks: list[Chunk], show: int) -> tuple[int, int]:
    page = Page()
    page.feed(decode(path.read_bytes()))
    visible = "".join(page.chars)
    wrong = missing = pos = 0
    for c in sorted(chunks, key=lambda c: c.start):
        at = visible.find(squeeze(c.text), pos)
        if at < 0:
            missing += 1
            continue
        pos = at + 1  # the next chunk starts after this one's start
        expected = page.heading_at(at)
        got = c.section.split(" > ")[-1] if c.section else None
        if got != expected:
            wrong += 1
            if wrong <= show:
                print(f"  {c.id}: labelled {got!r}, under {expected!r} in the page: {c.text[:60]!r}")
    print(f"{path.name}: {len(chunks)} chunks, {wrong} mismatches, {missing} not found in the page")
    return wrong, missing


def stored_chunks(index: Path) -> list[Chunk]:
    gen = live_generation(index)
    if gen is None:
        sys.exit(f"no index in {index}; build one with `rag index --index {index}`")
    with open(gen / "chunks.jsonl", encoding="utf-8") as f:
        return [Chunk(**json.loads(line)) for line in f]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--index", type=Path, help="check the chunks this index stores instead of chunking anew")
    ap.add_argument("--show", type=int, default=3, help="mismatches printed per file")
    args = ap.parse_args()
    stored = stored_chunks(args.index) if args.index else None
    settings = Settings()
    total = [0, 0, 0]
    for path in args.files:
        if stored is not None:
            chunks = [c for c in stored if Path(c.source).name == path.name]
        else:
            doc = load_document(SourceFile(path, path.name, "", path.read_bytes()))
            if isinstance(doc, str):
                sys.exit(f"{path}: {doc}")
            chunks = chunk_document(doc, settings.chunk_tokens, settings.chunk_overlap)
        wrong, missing = check(path, chunks, args.show)
        total = [total[0] + len(chunks), total[1] + wrong, total[2] + missing]
    print(f"total: {total[0]} chunks, {total[1]} mismatches, {total[2]} not found in the page")


if __name__ == "__main__":
    main()
