"""Launching the web chat: Blocks.launch() options (local only, nothing served but the app) and
the `rag serve` command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rag.apps.web.gate import DEFAULT_MAX_WAITING
from rag.apps.web.page import CSS, create_app
from rag.config import Settings
from rag.errors import ConfigError


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


LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def check_exposure(settings: Settings, no_auth: bool) -> None:
    """Beyond this machine only with a key (RAG_API_KEY), or when the user says so (--no-auth)."""
    if settings.host not in LOCAL_HOSTS and not settings.api_key and not no_auth:
        raise ConfigError(f"--host {settings.host} would serve every machine that can reach this one; "
                          "set RAG_API_KEY to require a bearer token, or pass --no-auth to serve without one")


def token_middleware(key: str):
    """Every route but /health needs the key: as a bearer token (API clients), or once as ?token=
    in the browser's address, which then keeps it in an HttpOnly cookie for the chat's own requests."""
    import hmac

    from fastapi.responses import JSONResponse

    def matches(value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(value.encode(), key.encode())

    async def check(request, call_next):
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        query = request.query_params.get("token")
        if request.url.path == "/health" or (scheme.lower() == "bearer" and matches(bearer.strip())) \
                or matches(request.cookies.get("rag_token")):
            return await call_next(request)
        if matches(query):
            response = await call_next(request)
            response.set_cookie("rag_token", key, httponly=True, samesite="strict")
            return response
        return JSONResponse({"error": {"message": "missing or wrong key; send 'Authorization: Bearer <RAG_API_KEY>' "
                                                  "or open the chat once with ?token=<RAG_API_KEY>",
                                       "type": "authentication_error"}},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})

    return check


def add_source_route(app, assistant, settings: Settings) -> None:
    """GET /source/<path>: an indexed document, so a citation can open it (a PDF at its page). Only
    files the live index lists, resolved inside the documents folder: nothing else on disk, no
    link out of the folder. PDFs as PDFs; anything else as plain text in a sandbox, so an HTML
    document cannot run in the chat's origin."""
    from fastapi.responses import FileResponse, JSONResponse

    docs = Path(settings.docs_dir).resolve()

    @app.get("/source/{rel:path}")
    def source(rel: str):
        path = (docs / rel).resolve()
        listed = rel in assistant.retriever.data.manifest.files
        if not listed or not path.is_relative_to(docs) or not path.is_file():
            return JSONResponse({"error": {"message": "no such indexed document", "type": "not_found"}}, status_code=404)
        pdf = path.suffix.lower() == ".pdf"
        return FileResponse(path, media_type="application/pdf" if pdf else "text/plain; charset=utf-8",
                            content_disposition_type="inline",
                            headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"})


def build_server(assistant, settings: Settings, max_waiting: int = DEFAULT_MAX_WAITING):
    """One ASGI app: the OpenAI-compatible API (rag.apps.api) with the web chat mounted at /, both
    on one model gate. Builds, never listens."""
    import gradio as gr

    from rag.apps.api import create_api
    from rag.apps.web.gate import ModelGate

    # A model server answers several questions at once (it batches them); the in-process model one.
    gate = ModelGate(max_waiting, lanes=settings.remote_parallel if settings.llm_url else 1)
    app = create_api(assistant, settings, gate=gate)
    add_source_route(app, assistant, settings)
    if settings.api_key:
        app.middleware("http")(token_middleware(settings.api_key))
    demo = create_app(assistant, settings, max_waiting=max_waiting, gate=gate)
    demo.rag_service.warm_up()  # API clients open no page: load the models now, in the background
    options = launch_options(settings)
    return gr.mount_gradio_app(
        app, demo, path="/", server_name=settings.host, server_port=settings.port, footer_links=options["footer_links"],
        run_history=False, allowed_paths=[], blocked_paths=options["blocked_paths"], show_error=False,
        max_file_size=options["max_file_size"], ssr_mode=False, css=CSS)


@click.command("serve")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Index folder (default: index/).")
@click.option("--model", help="Preset (default, quality) or path to a .gguf file.")
@click.option("--llm-url", help="Generate on this OpenAI-compatible server instead of in this process (RAG_LLM_URL).")
@click.option("--host", help="Address to bind (default 127.0.0.1: this machine only; beyond it needs RAG_API_KEY).")
@click.option("--port", type=int, help="Port (default 7860).")
@click.option("--no-auth", is_flag=True, help="Serve beyond this machine without RAG_API_KEY (anyone who can reach it may ask).")
@click.option("--max-waiting", type=click.IntRange(0, 256), default=DEFAULT_MAX_WAITING, show_default=True,
              help="Questions that may wait for the model before new ones are told it is busy.")
@click.pass_context
def serve_command(ctx: click.Context, index_dir: Path | None, model: str | None, llm_url: str | None, host: str | None,
                  port: int | None, no_auth: bool, max_waiting: int) -> None:
    """Serve the web chat and the OpenAI-compatible API (/v1/chat/completions, /v1/models, /v1/ask,
    /health) on http://127.0.0.1:7860, one engine behind both."""
    settings = Settings.from_env(**(ctx.obj or {}), index_dir=index_dir, model=model, llm_url=llm_url, host=host, port=port)
    serve(settings, no_auth, max_waiting)


def serve(settings: Settings, no_auth: bool = False, max_waiting: int = DEFAULT_MAX_WAITING) -> None:
    """What `rag serve` and `python app.py` run."""
    import uvicorn

    from rag.answer.assistant import build_assistant

    check_exposure(settings, no_auth)
    assistant = build_assistant(settings)
    app = build_server(assistant, settings, max_waiting)
    click.echo(f"serving the chat on http://{settings.host}:{settings.port}/ and the API on "
               f"http://{settings.host}:{settings.port}/v1 (Ctrl+C to stop)", err=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
