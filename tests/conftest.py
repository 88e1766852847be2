from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag.assistant import Assistant
from rag.config import Settings
from rag.embedders import FakeEmbedder
from rag.generation import FakeGenerator
from rag.indexing import build_index
from rag.retrieve import Retriever

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def settings(tmp_path) -> Settings:
    docs = tmp_path / "docs"
    docs.mkdir()
    return Settings(docs_dir=docs, index_dir=tmp_path / "index", cache_dir=tmp_path / "cache", embedder=FakeEmbedder.name)


@pytest.fixture
def corpus(settings) -> Settings:
    """A tiny two-file corpus, indexed with the fake embedder."""
    (settings.docs_dir / "alpha.txt").write_text(
        "Le ministre Fedorov a annoncé la production commune de drones avec la France.\n\n"
        "Les bombes AASM Hammer sont produites en volumes records.", encoding="utf-8")
    (settings.docs_dir / "beta.md").write_text(
        "# Contrats\n\nL'Ukraine a signé des dizaines de contrats avec des partenaires occidentaux.\n\n"
        "Rustem Umerov est le ministre de la défense.", encoding="utf-8")
    build_index(settings, FakeEmbedder())
    return settings


def make_assistant(settings: Settings, replies: list[str]) -> tuple[Assistant, FakeGenerator]:
    gen = FakeGenerator(replies)
    return Assistant(Retriever(settings.index_dir, FakeEmbedder()), gen, settings), gen
