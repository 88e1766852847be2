"""HTML (and the XHTML inside EPUBs): the visible text, whitespace normalised, its h1-h6 headings
naming the sections. Spans index the extracted text, not the markup."""

from __future__ import annotations

import re

from rag.ingest.loaders.files import SourceFile
from rag.ingest.loaders.sections import section_spans
from rag.ingest.loaders.text import decode, first_line_title
from rag.schema import CELL_SEPARATOR, Document, permalink_sign

HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_NOT_CONTENT = ["script", "style", "noscript", "template", "svg", "iframe", "object", "head"]
_NAVIGATION = 'nav, [role="navigation"], [role="search"]'
MAIN_MIN_SHARE = 0.25


def parse_html(html: str) -> tuple[str, str | None, list[tuple[int, int, str]]]:
    """Visible text of an HTML page (scripts, styles and other non-content dropped), whitespace
    normalised, its title, and its headings as (offset in that text, level, title) in document order.

    Each heading is placed where the tree has it, not found by its title in the text: a page's own
    table of contents (DocBook, Sphinx) or a navigation bar writes the same titles earlier, and a
    search would put every section there (all the body under the last title). Each heading element
    is replaced by one text line, its title, behind a character the page does not use, which marks
    where it is once the whole text is extracted and normalised."""
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    tree = HTMLParser(html)
    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node else None
    tree.strip_tags(_NOT_CONTENT)
    # A page that marks its main content (HTML's <main>, ARIA's role="main": Sphinx, MkDocs, most
    # sites) is read from there; navigation, search boxes and sidebars anywhere are no content.
    for node in tree.css(_NAVIGATION):
        node.decompose()
    body = tree.body or tree.root
    if not body:
        return "", title or None, []
    visible = body.text(separator="")  # the mark must not be in the text, "&#xE000;" included
    main = tree.css_first('main, [role="main"]')
    # ...unless what it marks is a small part of the page (a <main> around a title, the text beside
    # it): then the whole page is read rather than lose its text. The Python documentation's shortest
    # page has 30% of its text in <main>, the others 75-99%.
    if main is not None and len(inside := main.text(separator="")) >= MAIN_MIN_SHARE * len(visible):
        body, visible = main, inside
    mark = next(chr(c) for c in range(0xE000, 0xF900) if chr(c) not in visible)
    text, found = _render(body, mark)
    pieces = normalize_whitespace(text).split(mark)
    headings, pos = [], len(pieces[0])
    for (level, heading), piece in zip(found, pieces[1:]):
        headings.append((pos, level, heading))
        pos += len(piece)
    return "".join(pieces), title or None, headings


# Elements a browser lays out as blocks: each starts and ends a line. Every other element (<code>,
# <strong>, <a>, <span>, DocBook's <envar>…) is inline: its text runs on in the sentence around it.
BLOCKS = frozenset("""address article aside blockquote body caption center dd details dialog dir div dl dt
    fieldset figcaption figure footer form header hgroup hr html legend li main menu nav ol option p pre
    section summary table tbody tfoot thead tr ul""".split())
CELLS = ("td", "th")
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")


def _render(body, mark: str) -> tuple[str, list[tuple[int, str]]]:
    """The text a browser shows, with its line structure: source line breaks and indentation inside
    a paragraph are one space (as in HTML; only <pre> keeps them), blocks and <br> break lines, and a
    table row is one line, its cells between " | " (a block or <br> inside a cell is a space; <pre>
    lines and a heading inside a cell still break the row, rare in documents; nested tables run into
    the outer row's cell).
    A row is a sentence then, to rank and quote whole: with a cell a line, a row's port number or
    package name was cut off from the name it goes with (docs/quality.md, "Eighteenth round"). Putting
    every text node on a line of its own instead cut sentences at each inline element ("in
    Shell-Skripten \nBashisms\noder"), so chunks, ranked sentences and quotes ended mid-sentence.
    Headings become a line each, behind `mark`; returns the text and the headings found, (level,
    title) in order."""
    out: list[str] = []
    found: list[tuple[int, str]] = []
    # (node or text to emit, inside <pre>, inside a table cell); explicit: pages nest deeply
    stack: list = [(body, False, False)]
    while stack:
        node, pre, cell = stack.pop()
        if isinstance(node, str):
            out.append(node)
            continue
        tag = node.tag
        if tag == "-text":
            text = node.text_content or ""
            out.append(text if pre else _HTML_SPACE.sub(" ", text))
        elif tag in HEADINGS:
            for br in node.css("br"):
                br.replace_with(" ")
            heading = " ".join(node.text(separator="").split())  # inline markup adds no space: "the <code>$LANG</code>"
            # A link of one or two signs ending a heading is its permalink ("¶" in Sphinx and MkDocs, "#"):
            # no part of the title a citation names. The text keeps it (rag.retrieval.ranking.is_heading
            # allows for it): dropped there too, python-en's answers changed for the worse (docs/quality.md).
            links = node.css("a")
            sign = links[-1].text(separator="").strip() if links else ""
            permalink = permalink_sign(sign) and heading.endswith(sign)
            title = heading[: -len(sign)].rstrip() if permalink and len(heading) > len(sign) else heading
            if heading:
                found.append((int(tag[1]), title))
                out.append(f"\n{mark}{heading}\n")
        elif tag == "br":
            out.append(" " if cell else "\n")
        elif not tag.startswith("-"):  # comments and doctypes show nothing
            brk = (" " if cell else "\n") if tag in BLOCKS else ""
            out.append(brk)
            stack.append((brk, pre, cell))
            children = list(node.iter(include_text=True))
            if tag == "tr":
                cells = [c for c in children if c.tag in CELLS]
                children = [x for c in cells for x in (CELL_SEPARATOR, c)][1:]
            inside = pre or tag == "pre", cell or tag in CELLS
            stack.extend((child, *inside) for child in reversed(children))
    return "".join(out), found


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
    text, title, headings = parse_html(html)
    spans = section_spans(headings, len(text))
    return Document(path=rel, title=title or first_line_title(text, fallback_title), text=text, spans=spans)


def load_html(src: SourceFile) -> Document:
    return html_document(src.rel, decode(src.data).replace("\r\n", "\n"), src.path.stem)
