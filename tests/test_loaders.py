
import pytest

from rag.errors import InputError
from rag.ingest.loaders import decode, html_to_text, load_documents, looks_binary


def test_reads_txt_md_html_recursively_with_relative_paths(tmp_path):
    (tmp_path / "a.txt").write_text("plain text", encoding="utf-8")
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "b.md").write_text("# Title B\n\nbody", encoding="utf-8")
    (tmp_path / "sub" / "deeper" / "c.html").write_text(
        "<html><head><title>Page C</title><style>p{color:red}</style></head>"
        "<body><p>Visible words</p><script>alert('x')</script></body></html>", encoding="utf-8")
    (tmp_path / "ignored.pdf").write_bytes(b"%PDF-1.4")
    report = load_documents(tmp_path)
    docs = {d.path: d for d in report.documents}
    assert set(docs) == {"a.txt", "sub/b.md", "sub/deeper/c.html"}
    assert docs["sub/b.md"].title == "Title B"
    assert docs["sub/deeper/c.html"].title == "Page C"
    assert "Visible words" in docs["sub/deeper/c.html"].text
    assert "alert" not in docs["sub/deeper/c.html"].text and "color" not in docs["sub/deeper/c.html"].text


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_legacy_encodings_are_decoded(tmp_path, encoding):
    text = "Le ministère de la Défense a annoncé une coopération élargie avec l’armée française."
    data = text.encode(encoding, errors="ignore" if encoding == "latin-1" else "strict")
    (tmp_path / "x.txt").write_bytes(data)
    doc = load_documents(tmp_path).documents[0]
    assert "ministère" in doc.text and "Défense" in doc.text


def test_utf8_bom_is_stripped(tmp_path):
    (tmp_path / "bom.txt").write_bytes("\ufeffBonjour".encode("utf-8"))
    assert load_documents(tmp_path).documents[0].text == "Bonjour"


def test_empty_and_binary_files_are_skipped_with_reasons(tmp_path):
    (tmp_path / "empty.txt").write_text("   \n")
    (tmp_path / "blob.txt").write_bytes(bytes(range(256)) * 10)
    (tmp_path / "ok.txt").write_text("fine")
    report = load_documents(tmp_path)
    assert [d.path for d in report.documents] == ["ok.txt"]
    reasons = dict(report.skipped)
    assert reasons["empty.txt"] == "empty"
    assert "binary" in reasons["blob.txt"]


def test_oversized_file_is_skipped(tmp_path):
    (tmp_path / "big.txt").write_text("word " * 300_000)
    report = load_documents(tmp_path, max_file_mb=1)
    assert report.documents == [] and "larger than" in dict(report.skipped)["big.txt"]


def test_symlink_loop_terminates(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "doc.txt").write_text("text")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a", target_is_directory=True)
    assert [d.path for d in load_documents(tmp_path).documents] == ["a/doc.txt"]


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="--docs"):
        load_documents(tmp_path / "nope")


def test_plain_text_offsets_index_the_file_itself(tmp_path):
    raw = "Line one.\n\n\n   Line two with  spaces."
    (tmp_path / "t.txt").write_text(raw)
    assert load_documents(tmp_path).documents[0].text == raw


def test_binary_detection_and_decode_helpers():
    assert looks_binary(b"\x00\x01\x02abc")
    assert not looks_binary("é".encode("utf-16"))
    assert decode("é".encode("utf-16")) == "é"
    text, title = html_to_text("<p>a<br>b</p>")
    assert "a" in text and title is None


def test_running_headers_and_bare_page_numbers_go_a_line_on_few_pages_stays():
    from rag.ingest.loaders.pages import clean_pages

    words = ["alpha", "bravo", "charlie", "delta", "echo"]
    pages = [[f"Field Manual {n} / 5", f"Text about {words[n - 1]}.", "Tip" if n == 2 else f"More on {words[n - 1]}.", str(n)]
             for n in range(1, 6)]
    cleaned = clean_pages(["\n".join(p) for p in pages])
    assert cleaned[1] == "Text about bravo.\nTip"
    assert all("Field Manual" not in p and not p.rstrip().endswith(("1", "3", "4", "5")) for p in cleaned)
    assert clean_pages(["Only page one\nbody", "Only page one\nother"]) == ["Only page one\nbody", "Only page one\nother"]


def test_contents_pages_are_told_by_leaders_and_page_numbers_in_order():
    from rag.ingest.loaders.pages import contents_page

    assert contents_page(["Contents", "1 Intro . . . . . . . 1", "2 Use . . . . . . . 4", "Index ......... xii"])
    leaders = " . . . . . . ."
    # A list of figures after the contents' end, parts numbered afresh, chapter-page numbers, ranges.
    assert contents_page([f"C{leaders} 201", f"D{leaders} 230", "Figures", f"1{leaders} 4", f"2{leaders} 17", f"3{leaders} 40"])
    assert contents_page([f"a{leaders} 1", f"b{leaders} 3", f"c{leaders} 12", f"d{leaders} 1", f"e{leaders} 5"])
    assert contents_page([f"a{leaders} 1-1", f"b{leaders} 1-4", f"c{leaders} 2-1", f"Annex{leaders} A-1", f"d{leaders} 4-9"])
    assert not contents_page(["Menu", "Espresso . . . . . . 3", "Tea . . . . . . 2", "Latte . . . . . . 4"]), "prices"
    assert not contents_page(["Name: ..........", "Address: ..........", "Signed ......", "Form A"]), "a form"
    assert not contents_page(["He paused.....", "Then he spoke....."]), "no page numbers"
    # A line of many dots is matched in linear time (searched from every dot, this took seconds).
    assert not contents_page(["." * 3000 + " see page 4 of the annex"] * 20)


def test_word_table_rows_read_through_controls_and_merges():
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    from rag.ingest.loaders.docx import table_text

    def cell(text, props=""):
        return f"<w:tc><w:tcPr>{props}</w:tcPr><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:tc>"

    merge, restart = '<w:vMerge/>', '<w:vMerge w:val="restart"/>'
    placeholder = '<w:sdt><w:sdtPr><w:showingPlcHdr/></w:sdtPr><w:sdtContent>{}</w:sdtContent></w:sdt>'
    filled = '<w:sdt><w:sdtPr><w:showingPlcHdr w:val="0"/></w:sdtPr><w:sdtContent>{}</w:sdtContent></w:sdt>'
    rows = [
        f"<w:tr>{cell('Item')}{cell('Pump P-101', restart)}{cell('Site', restart)}</w:tr>",
        # A row starting one grid column in (gridBefore) continues the merge of the column it starts at.
        f"<w:tr><w:trPr><w:gridBefore w:val='1'/></w:trPr>{cell('', merge)}{cell('', merge)}</w:tr>",
        # A cell showing its placeholder is an empty cell, its column kept; a filled control's text is read.
        f"<w:tr>{placeholder.format(cell('Click here'))}{cell('3 kW')}{filled.format(cell('Lyon'))}</w:tr>",
    ]
    table = parse_xml(f"<w:tbl {nsdecls('w')}>{''.join(rows)}</w:tbl>")
    assert table_text(table) == "Item | Pump P-101 | Site\nPump P-101 | Site\n | 3 kW | Lyon"


def test_dehyphenation_keeps_the_documents_own_compounds_and_joins_typeset_breaks():
    from rag.ingest.loaders.pages import clean_pages, dehyphenate

    assert dehyphenate("the distri-\nbution of non-\ndevelopers; non-developers") == "the distribution of non-developers; non-developers"
    assert dehyphenate("Jean-\nPierre came") == "Jean-Pierre came", "a capital after the break is no typesetter's cut"
    assert dehyphenate("pipe --\nflag") == "pipe --\nflag"
    assert clean_pages(["the con-", "figuration ends ﬁne"]) == ["the configuration", "ends fine"]


def test_citation_location_names_file_page_and_innermost_section():
    from rag.schema import location

    assert location("report.pdf", 12, None, "3 Installation > 3.2 Disks") == "report.pdf, p. 12, §3.2 Disks"
    assert location("report.pdf", 12, 13) == "report.pdf, p. 12-13"
    assert location("notes.txt") == "notes.txt"
