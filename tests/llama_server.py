"""llama.cpp's real OpenAI-compatible server (`python -m llama_cpp.server`, llama-cpp-python's
[server] extra) on a free loopback port, serving the bundled default model; stopped after use."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
from openai_stub import free_port


def default_model() -> Path:
    from rag.config import Settings
    from rag.generation.models import resolve_model

    return resolve_model("default", Settings.from_env().cache_dir)


@contextmanager
def llama_server(*, embedding: bool = False, n_ctx: int = 4096, alias: str = "default",
                 ready_s: float = 120.0) -> Iterator[str]:
    """The server's /v1 URL while the block runs."""
    port = free_port()
    threads = str(os.cpu_count() or 1)
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(default_model()), "--model_alias", alias,
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
           "--n_threads", threads, "--n_threads_batch", threads, "--flash_attn", "true", "--use_mmap", "false",
           "--embedding", "true" if embedding else "false"]
    if embedding:  # a chat model has no pooling of its own: one vector per text is the tokens' mean
        cmd += ["--kv_overrides", "qwen2.pooling_type=int:1"]
    log = open(os.devnull, "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + ready_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}: {' '.join(cmd)}")
            try:
                if httpx.get(url + "/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not answer within {ready_s:.0f} s")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
