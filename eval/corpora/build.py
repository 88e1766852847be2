"""Rebuild the held-out evaluation corpora from documentation installed offline by apt.

    python eval/corpora/build.py [--out eval/corpora] [NAME ...]

Each corpus is a folder of the source's own files, copied unchanged, so `rag index --docs
eval/corpora/<name>` indexes what a user of that documentation would point `rag` at. The folders are
not committed (they are large and the packages rebuild them); a corpus whose package is missing is
skipped with the apt command that installs it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

DEBIAN_REFERENCE = Path("/usr/share/debian-reference")
PYTHON_DOC = Path("/usr/share/doc/python3-doc/html")

# name -> (apt package, source folder, file patterns, document language)
CORPORA: dict[str, tuple[str, Path, tuple[str, ...], str]] = {
    # Debian Reference, German: 15 long chapters (some 300 printed pages).
    "debian-de": ("debian-reference-de", DEBIAN_REFERENCE, ("*.de.html",), "de"),
    # The same book in Spanish: a second language on a long corpus.
    "debian-es": ("debian-reference-es", DEBIAN_REFERENCE, ("*.es.html",), "es"),
    # The same book in Italian: a language no rule or threshold was ever tuned on (scored as it comes).
    "debian-it": ("debian-reference-it", DEBIAN_REFERENCE, ("*.it.html",), "it"),
    # Outside Debian's documentation: the Python tutorial and FAQ, in English.
    "python-en": ("python3-doc", PYTHON_DOC, ("tutorial/*.html", "faq/*.html"), "en"),
}


def build(name: str, out: Path) -> Path | None:
    package, source, patterns, _ = CORPORA[name]
    files = sorted(f for pattern in patterns for f in source.glob(pattern))
    if not files:
        print(f"skip {name}: {source} has no {', '.join(patterns)}; install it with: apt-get install {package}",
              file=sys.stderr)
        return None
    target = out / name
    shutil.rmtree(target, ignore_errors=True)
    for f in files:
        dest = target / f.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dest)
    print(f"{name}: {len(files)} files -> {target}", file=sys.stderr)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", choices=[*CORPORA, []], help="corpora to build (default: all)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)
    built = [build(n, args.out) for n in (args.names or CORPORA)]
    return 0 if all(built) else 1


if __name__ == "__main__":
    sys.exit(main())
