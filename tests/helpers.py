"""Helpers the test files share, written once: a free loopback port (rag.servers), the web app served in this
process, a server process started and stopped around a block (`rag serve`; llama.cpp's real
OpenAI-compatible server, `python -m llama_cpp.server` from llama-cpp-python's [server] extra,
serving the bundled default model), and the scripts in scripts/ imported as modules. Fixtures
(settings, corpus, seed_index...) are in conftest.py."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Iterator

from rag.servers import free_port, running

ROOT = Path(__file__).resolve().parents[1]
# The console script users run; `python -m rag.apps.cli` where it is not installed.
RAG_BIN = Path(sys.executable).with_name("rag")
RAG_CMD = [str(RAG_BIN)] if RAG_BIN.exists() else [sys.executable, "-m", "rag.apps.cli"]


@contextmanager
def served_app(assistant, settings, **app_kwargs) -> Iterator[tuple[str, object]]:
    """The real web app on a free 127.0.0.1 port, launched in this process with the options `rag
    serve` uses; yields (its base URL, ending in '/', and the Gradio app). Uploads go where
    GRADIO_TEMP_DIR says: use the `gradio_tmp` fixture."""
    from rag.apps.web import create_app, launch_options

    settings = settings.replace(port=free_port())
    demo = create_app(assistant, settings, **app_kwargs)
    demo.launch(**launch_options(settings), prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{settings.port}/", demo
    finally:
        demo.close()


@contextmanager
def server_process(cmd: list[str], ready_url: str, *, name: str, env: dict | None = None, cwd: Path | None = None,
                   ready_s: float = 180.0) -> Iterator[subprocess.Popen]:
    """cmd started as a server (rag.servers.running); the block runs once GET ready_url answers 200."""
    import httpx

    with running(cmd, lambda: httpx.get(ready_url, timeout=2).status_code == 200, name=name, env=env, cwd=cwd,
                 ready_s=ready_s) as (proc, _):
        yield proc


@contextmanager
def rag_serve(index: Path, *args: str, env: dict | None = None, ready_s: float = 180.0) -> Iterator[str]:
    """The real `rag serve` on a free port over index, as a user starts it; yields its base URL (no '/')."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with server_process([*RAG_CMD, "serve", "--port", str(port), *args], base + "/health", name="rag serve",
                        env={**os.environ, "RAG_INDEX_DIR": str(index), **(env or {})}, cwd=ROOT, ready_s=ready_s):
        yield base


def default_model() -> Path:
    from rag.config import Settings
    from rag.generation.models import resolve_model

    return resolve_model("default", Settings.from_env().cache_dir)


@contextmanager
def llama_server(*, embedding: bool = False, n_ctx: int = 4096, alias: str = "default",
                 ready_s: float = 120.0, model: Path | None = None) -> Iterator[str]:
    """The server's /v1 URL while the block runs; the bundled default model unless another is given."""
    port = free_port()
    threads = str(os.cpu_count() or 1)
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model or default_model()), "--model_alias", alias,
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
           "--n_threads", threads, "--n_threads_batch", threads, "--flash_attn", "true", "--use_mmap", "false",
           "--embedding", "true" if embedding else "false"]
    if embedding:  # a chat model has no pooling of its own: one vector per text is the tokens' mean
        cmd += ["--kv_overrides", "qwen2.pooling_type=int:1"]
    url = f"http://127.0.0.1:{port}/v1"
    with server_process(cmd, url + "/models", name="llama_cpp.server", ready_s=ready_s):
        yield url


def load_script(name: str, folder: Path = ROOT / "scripts") -> ModuleType:
    """<folder>/<name>.py, by default scripts/<name>.py, imported as a module (the scripts are not a package)."""
    path = folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{folder.name}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
