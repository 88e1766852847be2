"""HTML (and the XHTML inside EPUBs): the visible text, whitespace normalised, its h1-h6 headings
naming the sections. Spans index the extracted text, not the markup."""

from __future__ import annotations

import re

from rag.ingest.loaders.files import SourceFile
from rag.ingest.loaders.sections import find_headings, section_spans
from rag.ingest.loaders.text import decode, first_line_title
from rag.schema import Document

HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_NOT_CONTENT = ["script", "style", "noscript", "template", "svg", "iframe", "object", "head"]


def parse_html(html: str) -> tuple[str, str | None, list[tuple[int, str]]]:
    """Visible text of an HTML page (scripts, styles and other non-content dropped), its title and
    its headings as (level, text) in document order."""
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    tree = HTMLParser(html)
    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node else None
    tree.strip_tags(_NOT_CONTENT)
    body = tree.body or tree.root
    text = body.text(separator="\n", strip=False) if body else ""
    headings = [(int(n.tag[1]), n.text(separator=" ", strip=True)) for n in tree.css(",".join(HEADINGS))] if body else []
    return text, title or None, headings


def html_to_text(html: str) -> tuple[str, str | None]:
    """Visible text of an HTML page and its title."""
    text, title, _ = parse_html(html)
    return text, title


_BLANK_RUNS = re.compile(r"[ \t\r\f\v]*\n[ \t\r\f\v\n]*\n")
_SPACES = re.compile(r"[ \t\f\v\r]+")


def normalize_whitespace(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\u00a0", " ")
    text = _BLANK_RUNS.sub("\n\n", text)
    text = _SPACES.sub(" ", text)
    return "\n".join(line.strip() for line in text.split("\n")).strip()


def html_document(rel: str, html: str, fallback_title: str) -> Document:
    raw, title, headings = parse_html(html)
    text = normalize_whitespace(raw)
    spans = section_spans(find_headings(text, headings), len(text))
    return Document(path=rel, title=title or first_line_title(text, fallback_title), text=text, spans=spans)


def load_html(src: SourceFile) -> Document:
    return html_document(src.rel, decode(src.data).replace("\r\n", "\n"), src.path.stem)
