"""Time reading one long Word document (docs/documents.md, "Word"): a book of --paragraphs paragraphs
with a heading every hundred, written by python-docx into a temporary folder, read by rag's loader.

    .venv/bin/python scripts/time_docx.py [--paragraphs 6000] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paragraphs", type=int, default=6000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    import docx

    from rag.ingest.loaders import load_documents

    d = docx.Document()
    d.add_heading("A long report", level=0)
    for i in range(args.paragraphs):
        if i % 100 == 0:
            d.add_heading(f"Section {i // 100 + 1}", level=1 + (i // 100) % 3)
        d.add_paragraph(f"Paragraph {i} of the report, a sentence of ordinary length with a few more words.")
    with tempfile.TemporaryDirectory() as folder:
        d.save(Path(folder) / "report.docx")
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            doc = load_documents(Path(folder)).documents[0]
            times.append(time.perf_counter() - t0)
    sections = sum(1 for s in doc.spans if s.section)
    print(f"{args.paragraphs} paragraphs, {sections} sections, {len(doc.text):,} characters: "
          f"read in {statistics.median(times):.2f} s (median of {args.runs})")


if __name__ == "__main__":
    main()
