"""Compare PDF text extractors on real PDFs: text quality against the same book's HTML, and speed.

    .venv/bin/python scripts/compare_pdf.py [--langs en,de,fr] [--out runs/compare-pdf.json]

Real PDFs: Debian's debian-reference package ships the Debian Reference both as PDF (hundreds of
pages, typeset by dblatex/XeTeX) and as HTML. The HTML is the reference text: a word an extractor
outputs that the HTML never writes is damage (a word cut by a hyphen or glued to its neighbour, a
ligature left as U+FB01, a running header). Two generated pages add what that book lacks: a page in
two columns (drawn column by column, and line across line as some writers do) and a page of
ligature glyphs and hyphenated words. docs/documents.md has the table and the choice it made.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.ingest.loaders.html import html_to_text  # noqa: E402
from rag.ingest.loaders.pages import EDGE_LINES, clean_pages, edge_key, running_lines  # noqa: E402

BOOK = Path("/usr/share/debian-reference")
WORD = re.compile(r"[^\W\d_]{2,}")


def pypdfium2_pages(data: bytes) -> list[str]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        return [pdf[i].get_textpage().get_text_bounded() for i in range(len(pdf))]
    finally:
        pdf.close()


def pypdf_pages(data: bytes) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages]


def pdfminer_pages(data: bytes) -> list[str]:
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTTextContainer

    return ["".join(el.get_text() for el in page if isinstance(el, LTTextContainer)) for page in extract_pages(io.BytesIO(data))]


EXTRACTORS = {"pypdfium2": pypdfium2_pages, "pypdf": pypdf_pages, "pdfminer.six": pdfminer_pages}


def words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def book_quality(pages: list[str], reference: Counter) -> dict:
    text = "\n".join(p.replace("\r\n", "\n") for p in pages)
    tokens = words(text.replace("\x02", "-\n"))
    unknown = [w for w in tokens if w not in reference]
    # A word the HTML writes whole but the extraction cut in two ("distri" + "bution", "con" + "figuration").
    cut = sum(1 for a, b in zip(tokens, tokens[1:]) if (a not in reference or b not in reference) and a + b in reference)
    split = [p.replace("\r\n", "\n").split("\n") for p in pages]
    repeated = running_lines(split)
    headers = sum(1 for lines in split for ln in [x for x in lines if x.strip()][:EDGE_LINES] + [x for x in lines if x.strip()][-EDGE_LINES:]
                  if edge_key(ln) in repeated)
    return {
        "words": len(tokens),
        "recall": round(len(set(tokens) & set(reference)) / len(reference), 4),
        "unknown_share": round(len(unknown) / max(1, len(tokens)), 4),
        "cut_words": cut,
        "line_end_hyphens": len(re.findall(r"\w(?:-\n|\x02)\w", text)),
        "ligatures": sum(1 for ch in text if 0xFB00 <= ord(ch) <= 0xFB06),
        "running_header_lines": headers,
    }


def html_reference(lang: str) -> Counter:
    counts: Counter = Counter()
    for page in sorted(BOOK.glob(f"*.{lang}.html")):
        counts.update(words(html_to_text(page.read_text(encoding="utf-8"))[0]))
    return counts


LEFT = ["Bees forage rapeseed in spring.", "The hive holds forty thousand workers.", "Each worker lives six weeks.",
        "Drones leave the hive at noon.", "The queen lays two thousand eggs a day.", "Swarms leave in late May."]
RIGHT = ["Rapeseed honey sets within days.", "It is harvested at the end of May.", "Frames are spun in a cold room.",
         "The honey rests for a week.", "Jars are sealed before sale.", "Wax is melted into new sheets."]
# Ligature glyphs the bundled Vera font has (ﬁ, ﬂ), and words hyphenated at line ends, one a real compound.
LIGATURE_TEXT = ["The staff ﬁled the ﬂoor plans and the", "conﬁguration ﬁles for the air ﬁlters in", "the technical docu-",
                 "mentation of the heating instal-", "lation, a well-", "known weak point; well-known to all."]
LIGATURE_WORDS = ["filed", "floor", "configuration", "files", "filters", "documentation", "installation", "well-known weak"]


def two_column_page(interleaved: bool) -> bytes:
    """Two columns of sentences, one a line; drawn column by column, or line by line across both."""
    from reportlab.pdfgen import canvas

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from documents import _font

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.setFont(_font(), 10)
    rows = range(len(LEFT))
    order = [(x, r) for r in rows for x in (0, 1)] if interleaved else [(x, r) for x in (0, 1) for r in rows]
    for x, r in order:
        c.drawString(60 + 260 * x, 760 - 16 * r, (LEFT, RIGHT)[x][r])
    c.showPage()
    c.save()
    return buf.getvalue()


def ligature_page() -> bytes:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from documents import pdf_bytes

    return pdf_bytes([LIGATURE_TEXT], header=None)


def reading_order(text: str) -> float:
    """Share of the page's sentence pairs found whole and in reading order (the left column, then the
    right): 1.0 is the page as read; lines merged across the columns score about 0.8."""
    flat = " ".join(text.split())
    positions = [flat.find(s) for s in LEFT + RIGHT]
    pairs = [(a, b) for i, a in enumerate(positions) for b in positions[i + 1 :]]
    return round(sum(1 for a, b in pairs if 0 <= a < b) / len(pairs), 3)


def synthetic(extract) -> dict:
    out = {}
    for name, interleaved in (("two_columns", False), ("two_columns_interleaved", True)):
        out[name] = reading_order("\n".join(extract(two_column_page(interleaved))))
    raw = "\n".join(extract(ligature_page()))
    cleaned = "\n".join(clean_pages(extract(ligature_page())))
    found = lambda text: sum(1 for w in LIGATURE_WORDS if re.search(rf"\b{re.escape(w)}\b", " ".join(text.split()))) / len(LIGATURE_WORDS)
    out["ligature_page_raw"] = round(found(raw), 2)
    out["ligature_page_cleaned"] = round(found(cleaned), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--langs", default="en,de,fr")
    parser.add_argument("--extractors", default=",".join(EXTRACTORS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # one warning a font lacking fontTools; the text is the same
    results = {}
    for lang in args.langs.split(","):
        pdf = BOOK / f"debian-reference.{lang}.pdf"
        data = pdf.read_bytes()
        reference = html_reference(lang)
        for name in args.extractors.split(","):
            t0 = time.perf_counter()
            pages = EXTRACTORS[name](data)
            seconds = time.perf_counter() - t0
            row = {"pages": len(pages), "pages_per_s": round(len(pages) / seconds, 1), **book_quality(pages, reference)}
            t1 = time.perf_counter()
            cleaned = clean_pages(pages)
            row["clean_ms_per_page"] = round(1000 * (time.perf_counter() - t1) / len(pages), 2)
            row["cleaned"] = book_quality(cleaned, reference)
            results.setdefault(name, {})[lang] = row
            print(f"{lang} {name:13} {json.dumps(row)}", flush=True)
    for name in args.extractors.split(","):
        results[name]["synthetic"] = synthetic(EXTRACTORS[name])
        print(f"synthetic {name:13} {json.dumps(results[name]['synthetic'])}", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
