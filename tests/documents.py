"""Real documents for the loader tests, written by real writers: reportlab (PDF), pypdf (encryption),
python-docx (DOCX), odfpy (ODT) and zipfile for EPUB (the EPUB container is a ZIP; EbookLib, the
writer library, is AGPL)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

# reportlab ships Bitstream Vera: accents and the ﬁ ligature glyph, on any machine.
_FONT = "Vera"


def _font():
    import reportlab
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if _FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(_FONT, os.path.join(os.path.dirname(reportlab.__file__), "fonts", "Vera.ttf")))
    return _FONT


def pdf_bytes(pages: list[list[str]], header: str | None = "Field Manual {page} / {pages}",
              outline: list[tuple[int, int, str]] = ()) -> bytes:
    """A PDF with one line of text per string, a running header on every page and bookmarks
    (page 1-based, level 0 = top, title)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, pageCompression=1)
    font = _font()
    marks = {}
    for number, lines in enumerate(pages, start=1):
        for i, (page, level, title) in enumerate(outline):
            if page == number:
                key = f"b{i}"
                c.bookmarkPage(key)
                marks[key] = (level, title)
                c.addOutlineEntry(title, key, level=level)
        if header:
            c.setFont(font, 9)
            c.drawString(72, 800, header.format(page=number, pages=len(pages)))
        c.setFont(font, 11)
        y = 760
        for line in lines:
            c.drawString(72, y, line)
            y -= 16
        c.showPage()
    c.save()
    return buf.getvalue()


def two_column_pdf(left: list[str], right: list[str]) -> bytes:
    """One page laid out in two frames, as a journal is: the left column, then the right."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.platypus import BaseDocTemplate, Frame, FrameBreak, PageTemplate, Paragraph

    buf = io.BytesIO()
    width, height = A4
    doc = BaseDocTemplate(buf, pagesize=A4)
    column = (width - 2 * 72 - 24) / 2
    frames = [Frame(72, 72, column, height - 144, id="left"), Frame(72 + column + 24, 72, column, height - 144, id="right")]
    doc.addPageTemplates([PageTemplate(frames=frames)])
    style = ParagraphStyle("body", fontName=_font(), fontSize=10, leading=13)
    story = [Paragraph(p, style) for p in left] + [FrameBreak()] + [Paragraph(p, style) for p in right]
    doc.build(story)
    return buf.getvalue()


def image_only_pdf(pages: int = 2) -> bytes:
    """A 'scan': pages holding a picture and no text layer."""
    from PIL import Image
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    picture = Image.new("L", (200, 100), 255)
    for x in range(20, 180):
        picture.putpixel((x, 50), 0)
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    for _ in range(pages):
        c.drawImage(ImageReader(picture), 72, 500, 400, 200)
        c.showPage()
    c.save()
    return buf.getvalue()


def encrypted_pdf(data: bytes, password: str = "secret") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=password, owner_password=password + "-owner")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def docx_bytes() -> bytes:
    """Headings on two levels, paragraphs with accents and a table."""
    import docx

    d = docx.Document()
    d.add_heading("Rapport annuel", level=0)
    d.add_paragraph("Préambule sans section particulière.")
    d.add_heading("1 Installation", level=1)
    d.add_paragraph("L'installation commence par le matériel.")
    d.add_heading("1.2 Disques", level=2)
    d.add_paragraph("Les disques chiffrés utilisent LUKS2 avec une clé de 512 bits.")
    table = d.add_table(rows=2, cols=2)
    for r, row in enumerate([("Disque", "Capacité"), ("nvme0n1", "2 To")]):
        for col, value in enumerate(row):
            table.cell(r, col).text = value
    d.add_heading("2 Réseau", level=1)
    d.add_paragraph("Le pare-feu bloque le port 23.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def revised_docx_bytes() -> bytes:
    """A Word document as review and templates leave it: tracked insertions and deletions, a section
    inside a content control, a field, a text box written twice (its drawing and the fallback), a
    footnote, a table of contents (a content control, and a paragraph in a "toc 1" style), an unfilled
    control showing its placeholder, a positional tab, a ruby and a repeating section of table rows."""
    import docx
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    from docx.opc.constants import CONTENT_TYPE as CT
    from docx.opc.constants import RELATIONSHIP_TYPE as RT
    from docx.opc.packuri import PackURI
    from docx.opc.part import Part

    d = docx.Document()
    d.add_paragraph("Le serveur principal est installé au sous-sol.")._p.append(parse_xml(
        f'<w:r {nsdecls("w")}><w:rPr><w:rStyle w:val="FootnoteReference"/></w:rPr><w:footnoteReference w:id="1"/></w:r>'))
    footnotes = (f'<w:footnotes {nsdecls("w")}><w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p>'
                 '</w:footnote><w:footnote w:id="1"><w:p><w:r><w:footnoteRef/></w:r><w:r><w:t xml:space="preserve"> Bâtiment C,'
                 ' niveau -1.</w:t></w:r></w:p></w:footnote></w:footnotes>')
    d.part.relate_to(Part(PackURI("/word/footnotes.xml"), CT.WML_FOOTNOTES, footnotes.encode(), d.part.package), RT.FOOTNOTES)
    ns = (nsdecls("w") + ' xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape"'
          ' xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" xmlns:v="urn:schemas-microsoft-com:vml"')
    tracked = ('<w:r><w:t xml:space="preserve">La sauvegarde part à </w:t></w:r>'
               '<w:del w:id="1" w:author="R" w:date="2024-01-01T00:00:00Z"><w:r><w:delText>minuit</w:delText></w:r></w:del>'
               '<w:ins w:id="2" w:author="R" w:date="2024-01-01T00:00:00Z"><w:r><w:t>deux heures</w:t></w:r></w:ins>'
               '<w:r><w:t xml:space="preserve"> vers la baie </w:t></w:r>'
               '<w:fldSimple w:instr="REF baie"><w:r><w:t>B7</w:t></w:r></w:fldSimple><w:r><w:t>.</w:t></w:r>')
    box = ('<w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><wps:wsp><wps:txbx><w:txbxContent>'
           '<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Encadré</w:t></w:r></w:p>'
           '<w:p><w:r><w:t>Astreinte : poste 4412.</w:t></w:r></w:p></w:txbxContent></wps:txbx></wps:wsp></w:drawing>'
           '</mc:Choice><mc:Fallback><w:pict><v:shape><v:textbox><w:txbxContent><w:p><w:r><w:t>Astreinte : poste 4412.'
           '</w:t></w:r></w:p></w:txbxContent></v:textbox></v:shape></w:pict></mc:Fallback></mc:AlternateContent></w:r>')
    control = ('<w:sdt><w:sdtPr><w:alias w:val="Procédure"/></w:sdtPr><w:sdtContent>'
               '<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Reprise</w:t></w:r></w:p>'
               f'<w:p>{tracked}</w:p><w:p><w:r><w:t xml:space="preserve">Voir l’encadré. </w:t></w:r>{box}</w:p>'
               '<w:del w:id="3" w:author="R" w:date="2024-01-01T00:00:00Z"><w:p><w:r><w:delText>Ancienne consigne.</w:delText></w:r></w:p></w:del>'
               '</w:sdtContent></w:sdt>')
    contents = ('<w:sdt><w:sdtPr><w:docPartObj><w:docPartGallery w:val="Table of Contents"/><w:docPartUnique/>'
                '</w:docPartObj></w:sdtPr><w:sdtContent><w:p><w:r><w:t>Sommaire</w:t></w:r></w:p><w:p><w:r>'
                '<w:t>Reprise après sinistre</w:t></w:r><w:r><w:tab/></w:r><w:r><w:t>2</w:t></w:r></w:p></w:sdtContent></w:sdt>')
    unfilled = ('<w:p><w:r><w:t xml:space="preserve">Client : </w:t></w:r><w:sdt><w:sdtPr><w:showingPlcHdr/></w:sdtPr>'
                '<w:sdtContent><w:r><w:t>Cliquez ici pour entrer du texte.</w:t></w:r></w:sdtContent></w:sdt></w:p>')
    tabbed = ('<w:p><w:r><w:t>Site</w:t></w:r><w:r><w:ptab w:relativeTo="margin" w:alignment="right" w:leader="none"/></w:r>'
              '<w:r><w:ruby><w:rubyPr/><w:rt><w:r><w:t>とうきょう</w:t></w:r></w:rt><w:rubyBase><w:r><w:t>東京</w:t></w:r>'
              '</w:rubyBase></w:ruby></w:r></w:p>')
    repeated = ('<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Matériel</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Qté</w:t></w:r>'
                '</w:p></w:tc></w:tr><w:sdt><w:sdtPr/><w:sdtContent><w:tr><w:tc><w:p><w:r><w:t>Routeur</w:t></w:r></w:p>'
                '</w:tc><w:tc><w:p><w:r><w:t>2</w:t></w:r></w:p></w:tc></w:tr></w:sdtContent></w:sdt></w:tbl>')
    body = d.element.body
    for xml in (contents, control, unfilled, tabbed, repeated):
        body.insert(len(body) - 1, parse_xml(f'<w:body {ns}>{xml}</w:body>')[0])
    from docx.enum.style import WD_STYLE_TYPE

    d.add_paragraph("Annexes techniques\t9", style=d.styles.add_style("toc 1", WD_STYLE_TYPE.PARAGRAPH))
    table = d.add_table(rows=1, cols=2)
    table.cell(0, 0).text = "Onduleur"
    cell = table.cell(0, 1)._tc
    cell.remove(cell.find(f"{{{d.element.nsmap['w']}}}p"))
    cell.append(parse_xml(f'<w:p {ns}><w:ins w:id="4" w:author="R" w:date="2024-01-01T00:00:00Z"><w:r><w:t>APC 3000</w:t></w:r></w:ins></w:p>'))
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def odt_bytes() -> bytes:
    from odf.opendocument import OpenDocumentText
    from odf.table import Table, TableCell, TableColumn, TableRow
    from odf.text import H, List, ListItem, P

    d = OpenDocumentText()
    d.text.addElement(P(text="Note liminaire."))
    d.text.addElement(H(outlinelevel=1, text="3 Installation"))
    d.text.addElement(P(text="Le serveur démarre depuis le réseau."))
    d.text.addElement(H(outlinelevel=2, text="3.2 Disques"))
    d.text.addElement(P(text="Le volume de données est monté sur /srv avec l'option noatime."))
    items = List()
    for word in ("sauvegarde nocturne", "réplication hebdomadaire"):
        item = ListItem()
        item.addElement(P(text=word))
        items.addElement(item)
    d.text.addElement(items)
    table = Table(name="t")
    table.addElement(TableColumn(numbercolumnsrepeated=2))
    for row in (("Volume", "Taille"), ("srv", "4 To")):
        tr = TableRow()
        for value in row:
            cell = TableCell()
            cell.addElement(P(text=value))
            tr.addElement(cell)
        table.addElement(tr)
    d.text.addElement(table)
    d.text.addElement(H(outlinelevel=1, text="4 Maintenance"))
    d.text.addElement(P(text="Les journaux sont conservés quatre-vingt-dix jours."))
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


_CONTAINER = """<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"""

_OPF = """<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="id">urn:uuid:0b0c1c39-6f4c-4c38-9d1b-8a9a27a3e5c1</dc:identifier>
    <dc:title>Le Guide du jardinier</dc:title><dc:language>fr</dc:language>
  </metadata>
  <manifest>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
    {items}
  </manifest>
  <spine>{itemrefs}</spine>
</package>"""

_XHTML = """<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE html><html xmlns="http://www.w3.org/1999/xhtml"><head><title>{title}</title></head>
<body>{body}</body></html>"""


def noted_odt_bytes() -> bytes:
    """An ODT paragraph with a footnote, extra spaces and a reviewer's comment, then one anchoring a text
    box and a shape with text, then a generated alphabetical index."""
    from odf.draw import CustomShape, Frame, Polygon, TextBox
    from odf.office import Annotation
    from odf.opendocument import OpenDocumentText
    from odf.text import AlphabeticalIndex, IndexBody, Note, NoteBody, NoteCitation, P, S

    doc = OpenDocumentText()
    p = P(text="Le serveur démarre à 6 heures")
    note = Note(id="ftn1", noteclass="footnote")
    note.addElement(NoteCitation(text="1"))
    body = NoteBody()
    body.addElement(P(text="Heure de Paris."))
    note.addElement(body)
    p.addElement(note)
    p.addText(" et s'arrête")
    p.addElement(S(c=3))
    p.addText("à minuit.")
    comment = Annotation()
    comment.addElement(P(text="Vérifier avec Paul"))
    p.addElement(comment)
    doc.text.addElement(p)
    p2 = P(text="Voir l'encadré.")
    frame, box = Frame(width="5cm", height="2cm", anchortype="paragraph"), TextBox()
    box.addElement(P(text="Astreinte : poste 4412."))
    frame.addElement(box)
    p2.addElement(frame)
    shape = CustomShape(width="3cm", height="1cm", anchortype="as-char")
    shape.addElement(P(text="Sortie de secours"))
    p2.addElement(shape)
    polygon = Polygon(width="2cm", height="1cm", points="0,0 10,0 5,10", viewbox="0 0 10 10", anchortype="as-char")
    polygon.addElement(P(text="Zone B"))
    p2.addElement(polygon)
    p2.addText(" Fin.")
    doc.text.addElement(p2)
    index, index_body = AlphabeticalIndex(name="Index1"), IndexBody()
    index_body.addElement(P(text="onduleur, 4"))
    index.addElement(index_body)
    doc.text.addElement(index)
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def epub_bytes(chapters: list[tuple[str, str]] | None = None, encrypt: bool = False) -> bytes:
    """An EPUB 3 of (file name, XHTML body) chapters, in spine order."""
    chapters = chapters or [
        ("ch1.xhtml", "<h1>Chapitre 1 Semis</h1><p>Les tomates se sèment en mars sous abri.</p>"
                      "<h2>1.1 Arrosage</h2><p>Arroser au pied, jamais sur les feuilles.</p>"),
        ("ch2.xhtml", "<h1>Chapitre 2 Récolte</h1><p>La récolte des courges a lieu en octobre.</p>"),
    ]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")  # first and stored, as the spec asks
        z.writestr("META-INF/container.xml", _CONTAINER)
        items = "".join(f'<item id="c{i}" href="{name}" media-type="application/xhtml+xml"/>' for i, (name, _) in enumerate(chapters))
        refs = "".join(f'<itemref idref="c{i}"/>' for i in range(len(chapters)))
        z.writestr("OEBPS/content.opf", _OPF.format(items=items, itemrefs=refs), zipfile.ZIP_DEFLATED)
        z.writestr("OEBPS/nav.xhtml", _XHTML.format(title="nav", body="<nav epub:type='toc'><ol><li>x</li></ol></nav>"))
        for name, body in chapters:
            z.writestr(f"OEBPS/{name}", _XHTML.format(title=name, body=body), zipfile.ZIP_DEFLATED)
        if encrypt:
            refs = "".join(f'<EncryptedData xmlns="http://www.w3.org/2001/04/xmlenc#"><CipherData>'
                           f'<CipherReference URI="OEBPS/{name}"/></CipherData></EncryptedData>' for name, _ in chapters)
            z.writestr("META-INF/encryption.xml",
                       f'<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container">{refs}</encryption>')
    return buf.getvalue()


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
