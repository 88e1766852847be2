"""PDF, DOCX, ODT and EPUB, written by real writer libraries: their text, page and section
provenance end to end (loader, chunks, index, retrieval, CLI citation), and their bad files."""

from __future__ import annotations

import io
import json

import pytest
from click.testing import CliRunner
from conftest import make_assistant
from documents import (docx_bytes, noted_odt_bytes, revised_docx_bytes, encrypted_pdf, epub_bytes, image_only_pdf, odt_bytes, pdf_bytes, two_column_pdf,
                       write)

import rag.answer.assistant
from rag.apps.cli import main
from rag.ingest.indexing import build_index
from rag.ingest.loaders import SUPPORTED_SUFFIXES, content_problem, load_documents
from rag.ingest.store import live_generation, load_index
from rag.retrieval.embedders import FakeEmbedder
from rag.retrieval.search import Retriever

MANUAL = [
    ["Chapitre premier : l'été à Noël.", "Le ﬁltre à air se change chaque année."],
    ["Les pompes hydrauliques demandent une révision tous les deux", "mois ; la pression nominale est de 210 bars."],
    ["3 Réseau", "Le réseau relie les trois hangars.", "3.2 Routage",
     "La conﬁguration du réseau utilise le protocole OSPF et une", "adresse de secours 10.4.0.1 pour la passe-", "relle principale."],
    ["Le carburant recommandé est le gazole arctique en hiver."],
]
OUTLINE = [(1, 0, "1 Généralités"), (2, 0, "2 Hydraulique"), (3, 0, "3 Réseau"), (3, 1, "3.2 Routage"), (4, 0, "4 Carburant")]


def test_pdf_text_by_page_with_ligatures_hyphenation_and_running_header_cleaned(tmp_path):
    write(tmp_path, "manual.pdf", pdf_bytes(MANUAL, outline=OUTLINE))
    doc = load_documents(tmp_path).documents[0]
    assert "Field Manual" not in doc.text, "the header repeated on every page is dropped"
    assert "filtre" in doc.text and "configuration" in doc.text and "\ufb01" not in doc.text
    assert "l'été à Noël" in doc.text
    assert "passerelle principale" in doc.text, "the typesetter's hyphen across a line end is undone"
    pages = [s for s in doc.spans if s.page]
    assert [s.page for s in pages] == [1, 2, 3, 4]
    assert "210 bars" in doc.text[pages[1].start : pages[1].end]
    sections = {s.section: doc.text[s.start : s.end] for s in doc.spans if s.section}
    assert "hangars" in sections["3 Réseau"] and "OSPF" not in sections["3 Réseau"]
    assert "OSPF" in sections["3 Réseau > 3.2 Routage"] and "gazole" in sections["4 Carburant"]


def test_pdf_contents_pages_are_not_indexed_and_pages_keep_their_numbers(tmp_path):
    leaders = " ." * 30
    contents = ["Table des matières", f"1 Généralités{leaders} 2", f"2 Hydraulique{leaders} 3", "3 Réseau 3",
                f"3.2 Routage{leaders} 3", f"Liste des tableaux{leaders} iv"]
    prices = ["Tarifs de l'atelier", f"Gazole{leaders} 3", f"Huile{leaders} 2", f"Filtre{leaders} 4"]
    write(tmp_path, "manual.pdf", pdf_bytes([contents, *MANUAL, prices]))
    doc = load_documents(tmp_path).documents[0]
    assert "Table des matières" not in doc.text and "Routage . ." not in doc.text, "the contents page is dropped"
    pages = [s.page for s in doc.spans if s.page]
    assert pages == [2, 3, 4, 5, 6], "the other pages keep the document's numbers"
    assert "gazole arctique" in doc.text and "Huile" in doc.text, "a price list's leaders, numbers out of order, stay"


def test_docx_final_text_with_tracked_changes_content_controls_fields_text_boxes_and_footnotes(tmp_path):
    write(tmp_path, "procedure.docx", revised_docx_bytes())
    doc = load_documents(tmp_path).documents[0]
    assert "La sauvegarde part à deux heures vers la baie B7." in doc.text, "insertion and field result kept"
    assert "minuit" not in doc.text and "Ancienne consigne" not in doc.text, "deleted text stays out"
    assert doc.text.count("Astreinte : poste 4412.") == 1, "a text box once, not its fallback copy too"
    assert "Onduleur | APC 3000" in doc.text, "an insertion in a table cell"
    assert doc.text.startswith("Le serveur principal est installé au sous-sol.\nBâtiment C, niveau -1.\n"), \
        "a footnote is a line after the paragraph that refers to it"
    assert "Sommaire" not in doc.text and "sinistre" not in doc.text and "Annexes" not in doc.text, "no contents"
    assert "Client :" in doc.text and "Cliquez" not in doc.text, "an unfilled control's placeholder is no text"
    assert "Site\t東京" in doc.text and "とうきょう" not in doc.text, "a positional tab, a ruby's base"
    assert "Matériel | Qté\nRouteur | 2" in doc.text, "rows inside a repeating section's content control"
    sections = {s.section: doc.text[s.start : s.end] for s in doc.spans if s.section}
    assert "deux heures" in sections["Reprise"], "a heading inside a content control names its section"
    assert "Encadré" in doc.text and "Reprise > Encadré" not in sections and "Encadré" not in sections, \
        "a text box's heading heads no section"


def test_odt_footnotes_text_boxes_and_shapes_are_lines_of_their_own_comments_and_indexes_no_text(tmp_path):
    write(tmp_path, "horaires.odt", noted_odt_bytes())
    lines = load_documents(tmp_path).documents[0].text.split("\n")
    assert lines == ["Le serveur démarre à 6 heures et s'arrête   à minuit.", "Heure de Paris.",
                     "Voir l'encadré. Fin.", "Astreinte : poste 4412.", "Sortie de secours", "Zone B"], "and no index"


def test_odt_is_read_from_its_content_whatever_its_styles_part(tmp_path, capfd):
    # pandoc 2.17 writes a styles.xml that declares a namespace twice: not well-formed XML. The text is in
    # content.xml; odfpy parsed both, failed on the styles and printed the whole part to the terminal.
    import zipfile

    src = io.BytesIO(odt_bytes())
    out = io.BytesIO()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "styles.xml":
                data = data.replace(b"<office:document-styles ", b'<office:document-styles xmlns:dc="x" xmlns:dc="x" ', 1)
            zout.writestr(item, data)
    write(tmp_path, "pandoc.odt", out.getvalue())
    doc = load_documents(tmp_path).documents[0]
    assert "Le serveur démarre depuis le réseau." in doc.text
    assert "document-styles" not in capfd.readouterr().out, "nothing printed"


def test_pdf_two_columns_read_column_by_column(tmp_path):
    left = ["Les abeilles butinent le colza au printemps. La ruche compte quarante mille ouvrières en été."]
    right = ["Le miel de colza cristallise en quelques jours. Il se récolte dès la fin du mois de mai."]
    write(tmp_path, "two.pdf", two_column_pdf(left, right))
    text = " ".join(load_documents(tmp_path).documents[0].text.split())
    assert text.index("quarante mille ouvrières") < text.index("Le miel de colza"), "left column first, whole"
    assert "La ruche compte quarante mille ouvrières en été." in text


def test_docx_headings_tables_and_title(tmp_path):
    write(tmp_path, "rapport.docx", docx_bytes())
    doc = load_documents(tmp_path).documents[0]
    assert doc.title == "Rapport annuel"
    assert "nvme0n1 | 2 To" in doc.text, "a table row is one line, cells kept apart"
    sections = {s.section: doc.text[s.start : s.end] for s in doc.spans}
    assert "LUKS2" in sections["1 Installation > 1.2 Disques"] and "port 23" in sections["2 Réseau"]
    assert not any("Préambule" in t for t in sections.values()), "text before the first heading has no section"


def test_odt_headings_lists_and_tables(tmp_path):
    write(tmp_path, "serveur.odt", odt_bytes())
    doc = load_documents(tmp_path).documents[0]
    sections = {s.section: doc.text[s.start : s.end] for s in doc.spans}
    assert "noatime" in sections["3 Installation > 3.2 Disques"]
    assert "réplication hebdomadaire" in sections["3 Installation > 3.2 Disques"] and "srv | 4 To" in doc.text
    assert "quatre-vingt-dix" in sections["4 Maintenance"]


def test_epub_spine_order_title_and_sections(tmp_path):
    write(tmp_path, "guide.epub", epub_bytes())
    doc = load_documents(tmp_path).documents[0]
    assert doc.title == "Le Guide du jardinier"
    assert doc.text.index("tomates") < doc.text.index("courges")
    sections = {s.section: doc.text[s.start : s.end] for s in doc.spans}
    assert "feuilles" in sections["Chapitre 1 Semis > 1.1 Arrosage"] and "octobre" in sections["Chapitre 2 Récolte"]


def test_markdown_and_html_headings_name_sections(tmp_path):
    (tmp_path / "notes.md").write_text("Intro.\n\n# 3 Installation\n\nText.\n\n```\n# not a heading\n```\n\n"
                                       "## 3.2 Disks\n\nThe disks are mirrored.\n", encoding="utf-8")
    (tmp_path / "page.html").write_text("<h1>Guide</h1><p>Start.</p><h2>Setup <em>fast</em></h2><p>Run the installer.</p>",
                                        encoding="utf-8")
    docs = {d.path: d for d in load_documents(tmp_path).documents}
    md = {s.section: docs["notes.md"].text[s.start : s.end] for s in docs["notes.md"].spans}
    assert list(md) == ["3 Installation", "3 Installation > 3.2 Disks"] and "mirrored" in md["3 Installation > 3.2 Disks"]
    html = {s.section: docs["page.html"].text[s.start : s.end] for s in docs["page.html"].spans}
    assert "installer" in html["Guide > Setup fast"]


def test_page_and_section_reach_the_index_retrieval_and_json(settings):
    write(settings.docs_dir, "manual.pdf", pdf_bytes(MANUAL, outline=OUTLINE))
    write(settings.docs_dir, "rapport.docx", docx_bytes())
    settings = type(settings)(**{**settings.__dict__, "chunk_tokens": 24, "chunk_overlap": 4})
    build_index(settings, FakeEmbedder())
    hits = Retriever(settings.index_dir, FakeEmbedder()).search("pression nominale des pompes hydrauliques en bars", 3)
    top = hits[0].chunk
    assert top.source == "manual.pdf" and top.page == 2 and top.section == "2 Hydraulique"
    docx_hit = Retriever(settings.index_dir, FakeEmbedder()).search("disques chiffrés LUKS2 clé 512 bits", 1)[0].chunk
    assert docx_hit.source == "rapport.docx" and docx_hit.page is None and docx_hit.section == "1 Installation > 1.2 Disques"
    lines = (live_generation(settings.index_dir) / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
    assert all("page" in json.loads(line) for line in lines if '"manual.pdf"' in line)
    assert not any("page" in json.loads(line) for line in lines if '"rapport.docx"' in line), "absent, not null"


def test_old_chunks_without_provenance_still_load(corpus):
    gen = live_generation(corpus.index_dir)
    for line in (gen / "chunks.jsonl").read_text(encoding="utf-8").splitlines():
        assert not {"page", "page_end"} & set(json.loads(line)), "a .txt/.md chunk stores no page"
    chunks = load_index(corpus.index_dir).chunks
    assert all(c.page is None for c in chunks)


def test_cli_cites_page_and_section(settings, monkeypatch):
    write(settings.docs_dir, "manual.pdf", pdf_bytes(MANUAL, outline=OUTLINE))
    env = {"RAG_EMBEDDER": "fake-hash", "RAG_CACHE_DIR": str(settings.cache_dir), "RAG_CHUNK_TOKENS": "24", "RAG_CHUNK_OVERLAP": "4"}
    result = CliRunner().invoke(main, ["index", "--docs", str(settings.docs_dir), "--index", str(settings.index_dir)], env=env)
    assert result.exit_code == 0, result.output
    monkeypatch.setattr(rag.answer.assistant, "build_assistant",
                        lambda s: make_assistant(s, ["La pression nominale est de 210 bars [1]."])[0])
    result = CliRunner().invoke(main, ["ask", "Quelle est la pression nominale des pompes hydrauliques ?",
                                       "--index", str(settings.index_dir)], env=env)
    assert result.exit_code == 0, result.output
    assert "] manual.pdf, p. 2, §2 Hydraulique (chars" in result.stdout
    result = CliRunner().invoke(main, ["ask", "Quelle est la pression nominale des pompes hydrauliques ?", "--json",
                                       "--index", str(settings.index_dir)], env=env)
    cited = json.loads(result.stdout)["citations"]
    assert cited and cited[0]["page"] == 2 and cited[0]["location"] == "manual.pdf, p. 2, §2 Hydraulique"


def test_bad_files_are_skipped_one_line_each_and_the_rest_indexed(settings):
    good = pdf_bytes(MANUAL)
    docs = settings.docs_dir
    write(docs, "ok.pdf", good)
    write(docs, "ok.docx", docx_bytes())
    write(docs, "scan.pdf", image_only_pdf())
    write(docs, "locked.pdf", encrypted_pdf(good))
    write(docs, "cut.pdf", good[: len(good) // 2])
    write(docs, "zero.pdf", b"")
    write(docs, "page.pdf", b"<!DOCTYPE html><html><body><p>Not a PDF.</p></body></html>")
    write(docs, "huge.pdf", b"%PDF-1.7\n" + b"0" * 2_100_000)
    write(docs, "cut.docx", docx_bytes()[:2000])
    write(docs, "other.docx", odt_bytes())
    write(docs, "locked.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    write(docs, "cut.odt", odt_bytes()[:1500])
    write(docs, "notes.odt", b"plain words, not an archive")
    write(docs, "drm.epub", epub_bytes(encrypt=True))
    write(docs, "cut.epub", epub_bytes()[:700])
    write(docs, "bomb.epub", _zip_bomb())
    settings = type(settings)(**{**settings.__dict__, "max_file_mb": 2.0})
    result = CliRunner().invoke(main, ["index", "--docs", str(docs), "--index", str(settings.index_dir)],
                                env={"RAG_EMBEDDER": "fake-hash", "RAG_MAX_FILE_MB": "2", "RAG_CACHE_DIR": str(settings.cache_dir)})
    assert result.exit_code == 0, result.output
    assert "indexed 2 files" in result.stdout
    warnings = {line.split(":", 2)[1].strip().removeprefix("skipped "): line.split(":", 2)[2]
                for line in result.stderr.splitlines() if line.startswith("warning: skipped")}
    expected = {"scan.pdf": "no text layer", "locked.pdf": "needs a password", "cut.pdf": "damaged PDF",
                "zero.pdf": "empty", "page.pdf": "rename it to .html", "huge.pdf": "larger than 2 MB",
                "cut.docx": "damaged DOCX", "other.docx": "not a Word document", "locked.docx": "password-protected",
                "cut.odt": "damaged ODT", "notes.odt": "not a ODT", "drm.epub": "DRM-protected",
                "cut.epub": "damaged EPUB", "bomb.epub": "ZIP bomb"}
    assert set(warnings) == set(expected), result.stderr
    for name, why in expected.items():
        assert why in warnings[name], (name, warnings[name])
    assert all(len(line) < 300 for line in result.stderr.splitlines())


def _zip_bomb() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr("OEBPS/big.xhtml", b"\0" * 50_000_000)
    return buf.getvalue()


def test_reindexing_embeds_only_the_changed_document_of_any_format(settings):
    docs = settings.docs_dir
    write(docs, "manual.pdf", pdf_bytes(MANUAL))
    write(docs, "rapport.docx", docx_bytes())
    write(docs, "serveur.odt", odt_bytes())
    write(docs, "guide.epub", epub_bytes())
    first = build_index(settings, FakeEmbedder())
    assert first.files == 4 and not first.skipped
    again = build_index(settings, FakeEmbedder())
    assert again.embedded_chunks == 0 and again.unchanged == 4
    write(docs, "guide.epub", epub_bytes([("c.xhtml", "<h1>Taille</h1><p>Tailler les rosiers en février.</p>")]))
    third = build_index(settings, FakeEmbedder())
    assert third.changed == ["guide.epub"] and third.unchanged == 3 and 0 < third.embedded_chunks


def test_upload_check_accepts_every_format_by_content():
    assert {".pdf", ".docx", ".odt", ".epub", ".txt", ".md", ".html"} <= SUPPORTED_SUFFIXES
    assert content_problem(".pdf", pdf_bytes([["x"]])) is None
    assert content_problem(".docx", docx_bytes()) is None
    assert "rename it to .pdf" in content_problem(".txt", pdf_bytes([["x"]]))
    assert content_problem(".txt", b"A PDF starts with %PDF-1.7 and then objects.") is None, "text quoting a header is text"
    assert content_problem(".xlsx", b"PK\x03\x04").startswith("unsupported file type .xlsx")


def test_chunks_end_at_headings_and_name_the_pages_they_span():
    from rag.ingest.chunking import chunk_document
    from rag.schema import Document, Span

    text = "Alpha one. Alpha two.\nAlpha three.\nBeta heading\nBeta one. Beta two."
    beta = text.index("Beta heading")
    doc = Document("x.pdf", "x", text, spans=(Span(0, 22, page=1), Span(22, len(text), page=2),
                                               Span(0, beta, section="A"), Span(beta, len(text), section="A > B")))
    chunks = chunk_document(doc, chunk_tokens=200, overlap=4)
    assert [(c.page, c.page_end, c.section) for c in chunks] == [(1, 2, "A"), (2, None, "A > B")]
    assert chunks[1].text.startswith("Beta heading") and "Beta" not in chunks[0].text
