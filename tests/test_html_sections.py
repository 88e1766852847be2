"""An HTML page laid out as DocBook writes one (a navigation header, the chapter's h1, a table of
contents listing every section's title, then the sections nested h2 > h3 > h4): each chunk is cited
under the heading it actually sits under, not where the table of contents names it first."""

from __future__ import annotations

from documents import epub_bytes, write

from rag.ingest.chunking import chunk_document
from rag.ingest.loaders import load_documents
from rag.ingest.loaders.html import parse_html

TITLES = ["7.1. Disks", "7.1.1. Partitions", "7.1.1.1. Alignment", "7.1.2. Mounting", "7.2. Network", "7.2.1. Routes"]
LEVELS = [2, 3, 4, 3, 2, 3]
# One paragraph per section, each saying which section it belongs to in a word no title uses.
BODY = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]


def docbook_page() -> str:
    toc = "".join(f'<dt><span class="section"><a href="#s{i}">{t}</a></span></dt>' for i, t in enumerate(TITLES))
    sections, depth = "", 0
    for i, (title, level) in enumerate(zip(TITLES, LEVELS)):
        while depth >= level - 1:  # close the sections this one is not inside
            sections += "</div>"
            depth -= 1
        sections += (f'<div class="section"><div class="titlepage"><div><div><h{level} class="title">'
                     f'<a id="s{i}"></a>{title}</h{level}></div></div></div>'
                     f"<p>The {BODY[i]} paragraph is written under its own heading, with enough words for a sentence.</p>")
        depth = level - 1
    sections += "</div>" * depth
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><head>'
            '<title>Chapter 7. Storage</title></head><body>'
            '<div class="navheader"><table><tr><th>Chapter 7. Storage</th></tr></table><hr/></div>'
            '<div class="chapter"><div class="titlepage"><div><div><h1 class="title"><a id="c7"></a>Chapter 7. Storage'
            f'</h1></div></div></div><div class="toc"><p><strong>Table of Contents</strong></p><dl class="toc">{toc}</dl></div>'
            f'{sections}</div><div class="navfooter"><hr/>Chapter 8. Next</div></body></html>')


def expected_path(i: int) -> str:
    path, stack = ["Chapter 7. Storage"], []
    for title, level in zip(TITLES[: i + 1], LEVELS[: i + 1]):
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
    return " > ".join(path + [t for _, t in stack])


def test_docbook_sections_are_placed_where_the_page_has_them_not_in_its_table_of_contents(tmp_path):
    (tmp_path / "ch07.html").write_text(docbook_page(), encoding="utf-8")
    doc = load_documents(tmp_path).documents[0]
    sections = {s.section: doc.text[s.start : s.end] for s in doc.spans}
    assert sections["Chapter 7. Storage"].count("7.1.1.1. Alignment") == 1, "the table of contents is the chapter's"
    for i, word in enumerate(BODY):
        assert f"The {word} paragraph" in sections[expected_path(i)]
    assert "Chapter 7. Storage > 7.1. Disks > 7.1.1. Partitions > 7.1.1.1. Alignment" in sections  # h4 under h3 under h2
    chunks = chunk_document(doc, 60, 10)
    for i, word in enumerate(BODY):
        [chunk] = [c for c in chunks if f"The {word} paragraph" in c.text]
        assert chunk.section == expected_path(i), word
        assert chunk.text.startswith(TITLES[i]), "a section's chunk begins at its heading"
    assert chunks[0].section is None and chunks[0].text.startswith("Chapter 7. Storage"), "the navigation header"


def test_inline_markup_in_a_heading_adds_no_space_and_epub_chapters_place_headings_the_same(tmp_path):
    (tmp_path / "page.html").write_text('<h1>Locale</h1><p>Contents: The "$LANG" variable</p>'
                                        '<h2>The "<code>$LANG</code>" variable</h2><p>It sets the locale.</p>', encoding="utf-8")
    write(tmp_path, "book.epub", epub_bytes([("c1.xhtml", docbook_page().split("<body>")[1].split("</body>")[0])]))
    docs = {d.path: d for d in load_documents(tmp_path).documents}
    page = {s.section: docs["page.html"].text[s.start : s.end] for s in docs["page.html"].spans}
    assert page['Locale > The "$LANG" variable'].startswith('The "$LANG" variable\n\nIt sets')
    book = {s.section: docs["book.epub"].text[s.start : s.end] for s in docs["book.epub"].spans}
    for i, word in enumerate(BODY):
        assert f"The {word} paragraph" in book[expected_path(i)]


def test_the_section_checker_finds_no_mismatch_on_the_loader_and_reports_a_wrong_label(tmp_path, capsys):
    """scripts/check_sections.py, which measured the fix on the Debian Reference, on the same page:
    independent of the loader, it agrees with its labels and catches one that is wrong."""
    import dataclasses

    from helpers import load_script

    script = load_script("check_sections")
    page = tmp_path / "ch07.html"
    page.write_text(docbook_page(), encoding="utf-8")
    chunks = chunk_document(load_documents(tmp_path).documents[0], 60, 10)
    assert script.check(page, chunks, show=0) == (0, 0)
    bravo = next(i for i, c in enumerate(chunks) if "The bravo paragraph" in c.text)
    chunks[bravo] = dataclasses.replace(chunks[bravo], section=expected_path(5))
    assert script.check(page, chunks, show=1) == (1, 0)
    assert "7.2.1. Routes" in capsys.readouterr().out


def test_inline_elements_run_on_in_their_sentence_and_blocks_break_lines():
    """Source line breaks inside a paragraph and inline elements are one space, as a browser shows
    them; <pre> keeps its lines, <br> breaks them, a table row is a line, its cells between " | ", what
    a block in a cell would break a space."""
    text, _, _ = parse_html(
        "<body><p>Avoid <span><strong>bashisms</strong></span>\nor <code>zshisms</code> in scripts;\n"
        "   check with <code class='literal'>checkbashisms</code>(1).</p>"
        "<pre>if true; then\n  echo ok\nfi</pre>"
        "<table><tr><th>Good</th><th>Avoid</th></tr>\n<tr><td><p>[ a = b ]</p><p>or<br>[ a ]</p></td> <td>[ a == b ]</td></tr></table>"
        "<ul><li>one <em>item</em></li><li>two</li></ul><p>a<br>b</p></body>")
    lines = [line for line in text.split("\n") if line]
    assert lines == ["Avoid bashisms or zshisms in scripts; check with checkbashisms(1).",
                     "if true; then", "echo ok", "fi", "Good | Avoid", "[ a = b ] or [ a ] | [ a == b ]",
                     "one item", "two", "a", "b"]


def test_a_headings_permalink_sign_is_no_part_of_its_section_label():
    from rag.ingest.loaders.html import parse_html

    html = ('<html><body><h2>2.1. Installing<a class="headerlink" href="#i">¶</a></h2><p>Run it. See <a href="#s">§</a>.</p>'
            '<h3>C# and C++ <a href="#c">#</a></h3><p>Both.</p></body></html>')
    text, _, headings = parse_html(html)
    assert [h for _, _, h in headings] == ["2.1. Installing", "C# and C++"]
    # a sign linked inside a title is part of it
    _, _, inside = parse_html('<html><body><h2>The <a href="#m">%</a> operator</h2><p>Modulo.</p></body></html>')
    assert [h for _, _, h in inside] == ["The % operator"]
    assert "2.1. Installing¶" in text and "See §." in text  # the text is the page's, the label the title


def test_navigation_is_no_content_and_a_marked_main_part_is_read_alone():
    """Sidebars, navigation bars and search boxes (a fifth of the Python documentation's chunks were
    "Next topic", tables of contents of other pages, "This page") are dropped; a page that marks its
    main content is read from there only."""
    page = ("<body><div role='navigation'><a href='x'>Next topic</a> Library FAQ</div>"
            "<header>Python 3.11 documentation</header>"
            "<div role='main'><h1>General FAQ</h1><nav class='contents'><a href='#a'>What is Python?</a></nav>"
            "<p>Python is an interpreted language.</p></div>"
            "<div class='sphinxsidebar' role='search'><input> Quick search</div><footer>© PSF</footer></body>")
    text, _, headings = parse_html(page)
    assert text == "General FAQ\n\nPython is an interpreted language."
    assert [h[2] for h in headings] == ["General FAQ"]
    # Without a marked main part the whole body is read, less its navigation.
    text, _, _ = parse_html("<body><nav>Home | Up</nav><p>First.</p><div role='search'>Search</div><p>Second.</p></body>")
    assert text == "First.\n\nSecond."


def test_a_main_part_holding_little_of_the_page_does_not_hide_the_rest():
    """A <main> around a title alone, the article beside it: the whole page is read, nothing is lost."""
    article = "<p>" + "The article's own text, which sits outside the main element. " * 8 + "</p>"
    text, _, _ = parse_html(f"<body><nav>Home</nav><main><h1>Title</h1></main><div>{article}</div></body>")
    assert text.startswith("Title") and "outside the main element" in text and "Home" not in text
