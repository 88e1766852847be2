"""A generated multi-page PDF through the real `rag` script: the bundled embedder indexes it, the
bundled model answers, and the citation names the page the answer is printed on. Slow tier."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from documents import pdf_bytes, write

pytestmark = pytest.mark.slow

RAG = str(Path(sys.executable).with_name("rag"))

PAGES = [
    ["Maintenance handbook for the Northfield pumping station.", "This handbook covers the station's equipment."],
    ["Electrical supply", "The station draws power from two independent grid feeders.",
     "A diesel generator starts automatically within twelve seconds of a grid failure."],
    ["Hydraulic pumps", "The three hydraulic pumps run at a nominal pressure of 210 bar.",
     "Their seals are replaced every eighteen months by the maintenance contractor."],
    ["Water quality", "Chlorine levels are measured every hour at the outlet.",
     "Samples are sent weekly to the regional laboratory in Ashford."],
]


def rag(*args: str, index: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAG_INDEX_DIR": str(index)}
    return subprocess.run([RAG, *args], capture_output=True, text=True, env=env, timeout=900, check=False)


def test_answer_from_a_pdf_cites_the_page_it_is_on(tmp_path):
    docs = tmp_path / "docs"
    write(docs, "handbook.pdf", pdf_bytes(PAGES, outline=[(2, 0, "Electrical supply"), (3, 0, "Hydraulic pumps"),
                                                          (4, 0, "Water quality")]))
    (docs / "notes.txt").write_text("The visitor car park is closed on Sundays.", encoding="utf-8")
    indexed = rag("index", "--docs", str(docs), index=tmp_path / "index")
    assert indexed.returncode == 0, indexed.stderr
    assert "indexed 2 files" in indexed.stdout
    result = rag("ask", "What is the nominal pressure of the hydraulic pumps?", "--json", index=tmp_path / "index")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert "210" in answer["answer"] and not answer["refused"]
    cited = [c for c in answer["citations"] if c["source"] == "handbook.pdf"]
    assert cited and cited[0]["page"] == 3 and cited[0]["section"] == "Hydraulic pumps"
    assert cited[0]["location"] == "handbook.pdf, p. 3, §Hydraulic pumps"
