"""A PDF whose pages are partly scans (images without a text layer), written by reportlab: its text
pages are indexed with their page numbers, and one warning names the file and the image-only pages,
once (an unchanged file is not read again, so not warned again)."""

from __future__ import annotations

import io

from click.testing import CliRunner
from documents import _font, write

from rag.apps.cli import main
from rag.ingest.loaders import SourceFile, load_document
from rag.ingest.loaders.pdf import page_ranges
from rag.ingest.store import load_index
from rag.retrieval.embedders import FakeEmbedder

TEXT = {1: "Le compresseur tourne à 3000 tours par minute.", 2: "La vanne principale se ferme à la main.",
        4: "Le filtre se change tous les six mois.", 8: "Fin du rapport d'entretien."}
SCANNED = [3, 5, 6, 7]  # a picture and no text; page 9 is left blank (not a scan) and page 10 holds a drawn line


def mixed_pdf() -> bytes:
    """Ten pages: text on 1, 2, 4 and 8, a picture only (a scanned page) on 3, 5, 6 and 7, nothing on
    9, a vector drawing and no text on 10."""
    from PIL import Image
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    picture = Image.new("L", (300, 200), 255)
    for x in range(20, 280):
        picture.putpixel((x, 100), 0)
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    for number in range(1, 11):
        if number in TEXT:
            c.setFont(_font(), 11)
            c.drawString(72, 760, TEXT[number])
        elif number in SCANNED:
            c.drawImage(ImageReader(picture), 0, 0, A4[0], A4[1])
        elif number == 10:
            c.line(72, 400, 500, 400)
        c.showPage()
    c.save()
    return buf.getvalue()


def test_page_ranges():
    assert page_ranges([3, 5, 6, 7]) == "3, 5-7"
    assert page_ranges([1]) == "1"
    assert page_ranges([2, 3, 9, 10, 11, 14]) == "2-3, 9-11, 14"


def test_loader_keeps_text_pages_and_names_the_image_only_ones(tmp_path):
    data = mixed_pdf()
    path = write(tmp_path, "rapport.pdf", data)
    doc = load_document(SourceFile(path, "rapport.pdf", "x", data))
    assert not isinstance(doc, str), doc
    pages = {s.page: doc.text[s.start : s.end] for s in doc.spans if s.page}
    assert set(pages) == set(TEXT)
    for number, line in TEXT.items():
        assert line in pages[number]
    assert len(doc.warnings) == 1
    assert "pages 3, 5-7 of 10" in doc.warnings[0] and "OCR" in doc.warnings[0]


def test_rag_index_warns_once_and_indexes_the_text_pages(settings):
    write(settings.docs_dir, "rapport.pdf", mixed_pdf())
    write(settings.docs_dir, "notes.txt", "Une note sans pages.".encode())
    args = ["index", "--docs", str(settings.docs_dir), "--index", str(settings.index_dir)]
    env = {"RAG_EMBEDDER": "fake-hash", "RAG_CACHE_DIR": str(settings.cache_dir)}
    first = CliRunner().invoke(main, args, env=env)
    assert first.exit_code == 0, first.output
    assert "indexed 2 files" in first.stdout
    warned = [line for line in first.stderr.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1, first.stderr
    assert warned[0].startswith("warning: rapport.pdf: pages 3, 5-7 of 10 are images without a text layer")
    assert len(warned[0]) < 300
    data = load_index(settings.index_dir, FakeEmbedder.name)
    pages = sorted({c.page for c in data.chunks if c.source == "rapport.pdf"})
    assert pages and set(pages) <= set(TEXT) and pages[0] == 1
    text = " ".join(c.text for c in data.chunks if c.source == "rapport.pdf")
    assert all(line in text for line in TEXT.values())
    again = CliRunner().invoke(main, args, env=env)  # unchanged: not read, not warned again
    assert again.exit_code == 0, again.output
    assert "warning" not in again.stderr, again.stderr
