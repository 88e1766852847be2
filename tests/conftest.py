from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import RAG_CMD

from rag.answer.assistant import Assistant
from rag.config import Settings
from rag.generation import models
from rag.generation.llama import FakeGenerator
from rag.ingest.indexing import build_index
from rag.retrieval.embedders import FakeEmbedder
from rag.retrieval.search import Retriever

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TIERS = ("slow", "browser")  # the real models and servers, and headless Chromium


def pytest_configure(config):
    """Test folders in memory (/dev/shm) when it has room: an index build fsyncs every file it
    publishes (its crash safety), on this machine's shared disk 80 ms of waiting in each build of the
    tiny corpus, and a fifth of the wall time of test_reliability, test_cli and test_documents (48 s
    on /tmp, 38 s on /dev/shm: `PYTEST_DEBUG_TEMPROOT=/tmp pytest tests/test_reliability.py ...`).
    On tmpfs the same calls return at once and the files behave the same. A --basetemp or
    PYTEST_DEBUG_TEMPROOT given by the caller wins."""
    shm = Path("/dev/shm")
    if (config.option.basetemp or "PYTEST_DEBUG_TEMPROOT" in os.environ or not shm.is_dir()
            or not os.access(shm, os.W_OK) or shutil.disk_usage(shm).free < 2 << 30):
        return
    os.environ["PYTEST_DEBUG_TEMPROOT"] = str(shm)


def pytest_addoption(parser):
    parser.addoption("--all", action="store_true", help="run every tier: fast, slow (real models, real servers) and browser")


def pytest_collection_modifyitems(config, items):
    """`pytest` alone runs the fast tier; `-m slow`, `-m browser` or `--all` select the others."""
    if config.getoption("--all") or config.getoption("markexpr"):
        return
    kept = [item for item in items if not any(tier in item.keywords for tier in TIERS)]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


def make_settings(root: Path) -> Settings:
    """Settings for a test: an empty docs folder, the index and cache in root, the fake embedder."""
    docs = root / "docs"
    docs.mkdir()
    # The fake generator's scripted replies are answers: query and quote translation (rag.answer.translate,
    # on by default) are switched on only by the tests about them.
    return Settings(docs_dir=docs, index_dir=root / "index", cache_dir=root / "cache", embedder=FakeEmbedder.name,
                    translate_queries=False, translate_quotes=False)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return make_settings(tmp_path)


def write_tiny_corpus(settings: Settings) -> Settings:
    """A tiny two-file corpus in settings.docs_dir, indexed with the fake embedder."""
    (settings.docs_dir / "alpha.txt").write_text(
        "Le ministre Fedorov a annoncé la production commune de drones avec la France.\n\n"
        "Les bombes AASM Hammer sont produites en volumes records.", encoding="utf-8")
    (settings.docs_dir / "beta.md").write_text(
        "# Contrats\n\nL'Ukraine a signé des dizaines de contrats avec des partenaires occidentaux.\n\n"
        "Rustem Umerov est le ministre de la défense.", encoding="utf-8")
    build_index(settings, FakeEmbedder())
    return settings


def write_doc(corpus: Settings, name: str, text: str) -> None:
    """One more document in the corpus, indexed again with the fake embedder."""
    (corpus.docs_dir / name).write_text(text, encoding="utf-8")
    build_index(corpus, FakeEmbedder())


@pytest.fixture
def corpus(settings) -> Settings:
    """A tiny two-file corpus, indexed with the fake embedder."""
    return write_tiny_corpus(settings)


@pytest.fixture
def gradio_tmp(tmp_path, monkeypatch):
    """Gradio's upload cache under the test's folder, never the working directory."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory) -> Path:
    """seeds/ indexed once a session by the real `rag index` with the bundled embedder (slow tier).
    Shared: tests read it and never write to it."""
    index = tmp_path_factory.mktemp("seeds") / "index"
    done = subprocess.run([*RAG_CMD, "index", "--docs", str(SEEDS), "--index", str(index)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return index


def make_assistant(settings: Settings, replies: list[str]) -> tuple[Assistant, FakeGenerator]:
    gen = FakeGenerator(replies)
    return Assistant(Retriever(settings.index_dir, FakeEmbedder()), gen, settings), gen


@pytest.fixture
def tiny_preset(tmp_path, monkeypatch):
    """A preset of three small parts in tmp; part_paths is pointed at them."""
    parts = []
    for n in range(3):
        p = tmp_path / "dist" / f"part{n}.bin"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"GGUF" * (n == 0) + os.urandom(50_000 + n))
        parts.append(p)
    blob = b"".join(p.read_bytes() for p in parts)
    preset = models.Preset(name="tiny", filename="tiny.gguf", size=len(blob), sha256=hashlib.sha256(blob).hexdigest(),
                           parts=tuple(("rag-test-tiny", p.name) for p in parts), install_hint="reinstall the tiny parts")
    monkeypatch.setattr(models, "part_paths", lambda pr: parts if pr.parts == preset.parts else pytest.fail("unexpected preset"))
    return preset, parts, blob
