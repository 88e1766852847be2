"""Launching the web chat: Blocks.launch() options (local only, nothing served but the app) and
the `rag serve` command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rag.apps.web.gate import DEFAULT_MAX_WAITING
from rag.apps.web.page import CSS, create_app
from rag.config import Settings


def launch_options(settings: Settings) -> dict[str, Any]:
    """Arguments for Blocks.launch(): local only, no share link, nothing served but the app."""
    return {
        "server_name": settings.host,
        "server_port": settings.port,
        "share": False,
        # No allowed_paths: Gradio then serves only its own assets and this app's uploads.
        "allowed_paths": [],
        "blocked_paths": [str(Path(settings.index_dir).resolve()), str(Path(settings.cache_dir).resolve())],
        "max_file_size": f"{max(1, int(settings.max_file_mb))}mb",
        "show_error": False,
        "ssr_mode": False,
        # Runs would be saved in the browser, where two tabs of the same browser could see each other's.
        "run_history": False,
        "footer_links": ["api", "settings"],
        "css": CSS,
    }


@click.command("serve")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Index folder (default: index/).")
@click.option("--model", help="Preset (default, quality) or path to a .gguf file.")
@click.option("--host", help="Address to bind (default 127.0.0.1: this machine only).")
@click.option("--port", type=int, help="Port (default 7860).")
@click.option("--max-waiting", type=click.IntRange(0, 256), default=DEFAULT_MAX_WAITING, show_default=True,
              help="Questions that may wait for the model before new ones are told it is busy.")
@click.pass_context
def serve_command(ctx: click.Context, index_dir: Path | None, model: str | None, host: str | None,
                  port: int | None, max_waiting: int) -> None:
    """Start the web chat (http://127.0.0.1:7860), on the same engine as `rag ask`."""
    from rag.answer.assistant import build_assistant

    settings = Settings.from_env(**(ctx.obj or {}), index_dir=index_dir, model=model, host=host, port=port)
    assistant = build_assistant(settings)
    demo = create_app(assistant, settings, max_waiting=max_waiting)
    click.echo(f"serving on http://{settings.host}:{settings.port} (Ctrl+C to stop)", err=True)
    demo.launch(**launch_options(settings), quiet=True)
