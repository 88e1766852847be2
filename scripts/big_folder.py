"""Build a big folder of mixed real documents for `rag bench --index-docs` (docs/performance.md,
"Indexing big folders"): at least --size-mb (default 520) under --out, never inside the repo.

    nice -n 19 .venv/bin/python scripts/big_folder.py --out /tmp/bigdocs [--size-mb 520]

What goes in, in this order, until the size is reached (the same machine gives the same folder):
1. real/: every .html, .htm, .txt, .md and .pdf of /usr/share/doc as Debian installed it;
2. real-gz/: the compressed texts there (changelogs, NEWS, READMEs, .md, .rst; .pdf stays .pdf),
   decompressed to .txt (JSON and binaries left out);
3. debian-reference/: the Debian Reference in five languages as HTML and as PDF (dblatex/XeTeX);
4. vim/: Vim's help files (.txt);
5. generated/: books written by real writer libraries from the real text of the Python
   documentation's HTML and the Debian Reference's HTML: PDF by reportlab (platypus: headings,
   paragraphs, code blocks, the PNG figures shipped in /usr/share/doc every few paragraphs), DOCX by
   python-docx (heading styles, paragraphs, the same figures), in rounds with a different page
   size, font size and figure spacing each round, until the folder holds --size-mb.
A summary (files, MB and pages by kind) goes to OUT/composition.json.
"""

from __future__ import annotations

import argparse
import gzip
import html
import io
import json
import os
import shutil
import sys
import time
from pathlib import Path

DOC = Path("/usr/share/doc")
REFERENCE = Path("/usr/share/debian-reference")
VIM = Path("/usr/share/vim")
SUFFIXES = {".html", ".htm", ".txt", ".md", ".pdf"}
GZ_TEXT = {"", ".debian", ".txt", ".md", ".rst", ".log"}
LAYOUTS = [  # (page size, body font size, a figure after every N paragraphs)
    ("A4", 10, 6), ("letter", 11, 9), ("A5", 9, 5), ("A4", 12, 12), ("letter", 9, 7), ("A5", 11, 8),
]


def size_of(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def copy_real(out: Path) -> None:
    for dirpath, _, names in os.walk(DOC):  # symlinked folders are not followed: no file twice
        for name in sorted(names):
            src = Path(dirpath) / name
            if src.is_symlink() or not src.is_file():
                continue
            rel = src.relative_to(DOC)
            suffix = src.suffix.lower()
            if suffix in SUFFIXES:
                dest = out / "real" / rel
            elif suffix == ".gz":
                inner = Path(src.stem).suffix.lower()
                if inner not in GZ_TEXT and inner != ".pdf":
                    continue
                dest = out / "real-gz" / rel.parent / (src.stem if inner in (".pdf", ".txt", ".md") else src.stem + ".txt")
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with gzip.open(src) as f:
                        data = f.read()
                except (OSError, EOFError):
                    continue
                dest.write_bytes(data)
                continue
            else:
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
    for src in sorted(REFERENCE.glob("*")):
        if src.suffix in (".html", ".pdf"):
            (out / "debian-reference").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out / "debian-reference" / src.name)
    for src in sorted(VIM.glob("vim*/doc/*.txt")):
        (out / "vim").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out / "vim" / src.name)


def blocks(path: Path) -> tuple[str, list[tuple[str, str]]]:
    """(title, [(kind, text)]) of an HTML page in document order: kind h1/h2/h3, p or pre."""
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    tree = HTMLParser(path.read_bytes())
    for junk in tree.css("script, style, nav, .sphinxsidebar, .related, .footer, .navheader, .navfooter"):
        junk.decompose()
    out = []
    for node in tree.css("h1, h2, h3, p, pre, dt, li > p"):
        text = " ".join(node.text(separator=" ").split()) if node.tag != "pre" else node.text().strip("\n")
        if text:
            out.append((node.tag if node.tag != "dt" else "p", text))
    title = next((t for k, t in out if k == "h1"), path.stem)
    return title, out


def figures(into: Path) -> list[Path]:
    """The PNG figures of /usr/share/doc as JPEG (quality 90), as a camera or a scanner writes them:
    both writers embed a JPEG's bytes as they are, where a PNG is decoded and compressed again."""
    from PIL import Image

    into.mkdir(parents=True, exist_ok=True)
    out = []
    for i, p in enumerate(sorted(DOC.rglob("*.png"))):
        if p.is_symlink() or not 8_000 < p.stat().st_size < 2_000_000:
            continue
        try:
            with Image.open(p) as im:
                if im.width < 100 or im.height < 60:
                    continue
                dest = into / f"fig{i}.jpg"
                im.convert("RGB").save(dest, quality=90)
                out.append(dest)
        except Exception:
            continue
    return out


def write_pdf(dest: Path, title: str, content: list[tuple[str, str]], layout: tuple, pool: list[Path], seed: int) -> None:
    from reportlab.lib import pagesizes
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import Image, Paragraph, Preformatted, SimpleDocTemplate

    page, font, every = layout
    styles = getSampleStyleSheet()
    body = styles["BodyText"].clone("body", fontSize=font, leading=font * 1.3)
    code = styles["Code"].clone("code", fontSize=font - 2, leading=(font - 2) * 1.2)
    width = getattr(pagesizes, page)[0] - 5 * cm
    story, n = [], 0
    for kind, text in content:
        if kind == "pre":
            story.append(Preformatted(text[:4000], code))
            continue
        style = styles["Heading1" if kind == "h1" else "Heading2" if kind == "h2" else "Heading3"] if kind[0] == "h" else body
        story.append(Paragraph(html.escape(text), style))
        n += 1
        if pool and n % every == 0:
            fig = pool[(seed + n) % len(pool)]
            story.append(Image(str(fig), width=width * 0.8, height=width * 0.5, kind="proportional"))
    doc = SimpleDocTemplate(str(dest), pagesize=getattr(pagesizes, page), title=title, invariant=1)
    doc.build(story)


def write_docx(dest: Path, title: str, content: list[tuple[str, str]], layout: tuple, pool: list[Path], seed: int) -> None:
    import docx
    from docx.shared import Cm, Pt

    _, font, every = layout
    d = docx.Document()
    d.styles["Normal"].font.size = Pt(font)
    d.add_heading(title, level=0)
    n = 0
    for kind, text in content:
        text = "".join(ch for ch in text if ch in "\t\n" or ord(ch) >= 32)  # XML 1.0 has no control characters
        if kind[0] == "h":
            d.add_heading(text, level=int(kind[1]))
        else:
            d.add_paragraph(text)
            n += 1
            if pool and n % every == 0:
                d.add_picture(str(pool[(seed + n) % len(pool)]), width=Cm(12))
    buf = io.BytesIO()
    d.save(buf)
    dest.write_bytes(buf.getvalue())


def generate(out: Path, target: int, say) -> None:
    sources = sorted((DOC / "python3.11" / "html").rglob("*.html")) + sorted(REFERENCE.glob("*.html"))
    sources = [p for p in sources if "genindex" not in p.name and p.stat().st_size > 20_000]
    pool = figures(out.parent / f".{out.name}-figures")
    say(f"{len(sources)} HTML sources, {len(pool)} figures")
    total = size_of(out)
    for rnd in range(len(LAYOUTS) * 4):
        layout = LAYOUTS[rnd % len(LAYOUTS)]
        for i, src in enumerate(sources):
            if total >= target:
                return
            title, content = blocks(src)
            if not content:
                continue
            rel = src.relative_to(src.parents[1] if src.is_relative_to(REFERENCE) else DOC / "python3.11" / "html")
            kind = "pdf" if (i + rnd) % 2 == 0 else "docx"
            dest = out / "generated" / f"round{rnd}" / kind / rel.with_suffix(f".{kind}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            (write_pdf if kind == "pdf" else write_docx)(dest, title, content, layout, pool, seed=i + rnd)
            total += dest.stat().st_size
        say(f"round {rnd} done: {total / 1e6:.0f} MB")


def composition(out: Path) -> dict:
    import pypdfium2 as pdfium

    kinds: dict[str, dict] = {}
    for p in sorted(out.rglob("*")):
        if not p.is_file() or p.name == "composition.json":
            continue
        k = kinds.setdefault(f"{p.relative_to(out).parts[0]} {p.suffix.lower()}", {"files": 0, "mb": 0.0, "pdf_pages": 0})
        k["files"] += 1
        k["mb"] += p.stat().st_size / 1e6
        if p.suffix.lower() == ".pdf":
            try:
                pdf = pdfium.PdfDocument(str(p))
                k["pdf_pages"] += len(pdf)
                pdf.close()
            except Exception:
                pass
    for k in kinds.values():
        k["mb"] = round(k["mb"], 1)
    return {"total_mb": round(sum(k["mb"] for k in kinds.values()), 1),
            "files": sum(k["files"] for k in kinds.values()), "by_kind": kinds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/bigdocs"))
    ap.add_argument("--size-mb", type=float, default=520)
    args = ap.parse_args()
    out = args.out.resolve()
    repo = Path(__file__).resolve().parents[1]
    if out.is_relative_to(repo):
        sys.exit(f"error: {out} is inside the repository; pass --out under /tmp")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f}s] {msg}", file=sys.stderr, flush=True)

    copy_real(out)
    say(f"real documents copied: {size_of(out) / 1e6:.0f} MB")
    generate(out, int(args.size_mb * 1e6), say)
    comp = composition(out)
    (out / "composition.json").write_text(json.dumps(comp, indent=1), encoding="utf-8")
    say(f"{comp['files']} files, {comp['total_mb']} MB in {out}")


if __name__ == "__main__":
    main()
