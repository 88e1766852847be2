"""Command-line options shared by every command (`rag ask`, `rag eval`, `rag bench`, `rag serve`)."""

from __future__ import annotations

from pathlib import Path

import click

from rag.config import Settings


def settings_from(ctx: click.Context, **overrides) -> Settings:
    return Settings.from_env(**ctx.obj, **overrides)

def index_option(f):
    return click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Index folder (default: index/).")(f)

def model_option(f):
    return click.option("--model", help="Preset (default, quality) or path to a .gguf file.")(f)

def top_k_option(f):
    return click.option("--top-k", type=int, help="Passages given to the model (default 4).")(f)


def llm_url_option(f):
    return click.option("--llm-url", help="Generate on this OpenAI-compatible server (llama.cpp, vLLM, Ollama), "
                        "e.g. http://127.0.0.1:8000/v1, instead of in this process (RAG_LLM_URL; docs/serving.md).")(f)
