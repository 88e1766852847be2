"""The chat page: the Gradio Blocks (Chat, Settings and Documents tabs), its CSS, and the events
wired to a ChatService. create_app builds the page and never launches it."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import gradio as gr

from rag.answer.assistant import Assistant
from rag.apps.web.gate import DEFAULT_MAX_WAITING, ModelGate
from rag.apps.web.render import escape_markdown, render_sources, user_message
from rag.apps.web.service import ChatService, ModelLoader, Session
from rag.apps.web.uploads import UPLOAD_SUFFIXES
from rag.config import Settings
from rag.errors import RagError

CSS = """
.rag-cite { font-weight: 600; text-decoration: none; padding: 0 1px; border-radius: 3px;
            background: var(--color-accent-soft); color: var(--color-accent); }
.rag-source { border-left: 3px solid var(--color-accent); padding: 6px 10px; margin: 8px 0;
              background: var(--block-background-fill); }
.rag-source:target { outline: 2px solid var(--color-accent); }
.rag-source-head { font-size: 0.9em; margin-bottom: 4px; }
.rag-badge { font-weight: 700; color: var(--color-accent); }
.rag-file { font-family: var(--font-mono); }
.rag-pos { color: var(--body-text-color-subdued); font-size: 0.85em; }
.rag-passage { white-space: pre-wrap; font-size: 0.9em; line-height: 1.45; }
.rag-passage mark { background: #fde68a; color: #111; padding: 0 1px; }
.rag-other { margin: 6px 0; opacity: 0.85; }
.rag-sources-q { font-size: 0.9em; margin-bottom: 6px; }
.rag-sources-empty { color: var(--body-text-color-subdued); }
"""


def create_app(assistant: Assistant, settings: Settings, max_waiting: int = DEFAULT_MAX_WAITING,
               model_loader: ModelLoader | None = None, gate: ModelGate | None = None) -> gr.Blocks:
    """The chat page and its API (api_name "ask"); never launches."""
    from rag.generation.models import PRESETS

    service = ChatService(assistant, settings, max_waiting, model_loader, gate)
    presets = list(PRESETS)
    if settings.model not in presets:
        presets.append(settings.model)

    with gr.Blocks(title="rag — ask your documents", analytics_enabled=False) as demo:
        demo.rag_service = service  # for tests and embedding
        session = gr.State(Session())
        gr.Markdown("## Ask your documents\nAnswers come only from the indexed files, with their sources.")
        with gr.Tab("Chat"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=3):
                    chat = gr.Chatbot(label="Chat", elem_id="rag-chat", height=520, latex_delimiters=[],
                                      feedback_options=None, buttons=["copy"], allow_tags=False,
                                      group_consecutive_messages=False,
                                      placeholder="Ask a question about your documents.")
                    question = gr.Textbox(label="Question", placeholder="Type a question and press Enter",
                                          elem_id="rag-question", lines=1, max_lines=4, autofocus=True)
                    with gr.Row():
                        send = gr.Button("Send", variant="primary", elem_id="rag-send")
                        stop = gr.Button("Stop", variant="stop", elem_id="rag-stop")
                        clear = gr.Button("New conversation", elem_id="rag-clear")
                with gr.Column(scale=2):
                    sources = gr.HTML(render_sources(None, 0), label="Sources", elem_id="rag-sources",
                                      js_on_load=None, container=True, max_height=640)
        with gr.Tab("Settings"):
            model = gr.Dropdown(presets, value=settings.model, label="Model preset (shared by every session)",
                                elem_id="rag-model")
            top_k = gr.Slider(0, 12, value=settings.top_k, step=1, label="Passages given to the model (top-k)",
                              elem_id="rag-top-k")
            temperature = gr.Slider(0.0, 1.5, value=settings.temperature, step=0.05, label="Temperature",
                                    elem_id="rag-temperature")
            status = gr.Markdown(elem_id="rag-status")
            refresh = gr.Button("Refresh status")
        with gr.Tab("Documents"):
            gr.Markdown(f"Add {', '.join(UPLOAD_SUFFIXES)} files (at most {settings.max_file_mb:g} MB each). "
                        "They are copied into the documents folder and only new or changed files are embedded.")
            files = gr.File(label="Upload documents", file_count="multiple", file_types=UPLOAD_SUFFIXES,
                            type="filepath", elem_id="rag-upload")
            with gr.Row():
                add = gr.Button("Add to index", variant="primary", elem_id="rag-add")
                reindex = gr.Button("Re-index folder", elem_id="rag-reindex")
            index_log = gr.Markdown(elem_id="rag-index-log")

        def on_respond(message: str, state: Session, k: float, temp: float):
            for text, messages, panel, new_state in service.respond(message, state, k, temp):
                yield text, messages, (gr.skip() if panel is None else panel), new_state

        # The gate above serialises model calls and bounds the line; Gradio's own limit must not
        # hold requests back before they reach it, or they could never be told "busy".
        chat_args = dict(fn=on_respond, inputs=[question, session, top_k, temperature],
                         outputs=[question, chat, sources, session], concurrency_limit=None,
                         show_progress="hidden")
        # One event for Enter and Send, so a second trigger while an answer streams is ignored
        # instead of racing the first for the same session.
        answering = gr.on([question.submit, send.click], **chat_args, api_visibility="private", trigger_mode="once")
        stop.click(None, cancels=[answering])
        def new_conversation():
            return "", [], render_sources(None, 0), Session()

        clear.click(new_conversation, outputs=[question, chat, sources, session], queue=False, api_visibility="private")
        # The Chatbot's own trash button clears the display; the conversation must go with it.
        chat.clear(new_conversation, outputs=[question, chat, sources, session], queue=False, api_visibility="private")
        def on_select(state: Session, evt: gr.SelectData) -> str:
            index = evt.index if isinstance(evt.index, int) else evt.index[0]
            return service.show_turn(state, index)

        chat.select(on_select, inputs=[session], outputs=[sources], queue=False, api_visibility="private")

        def on_model(spec: str):
            return service.switch_model(spec)

        model.change(on_model, inputs=[model], outputs=[status], concurrency_limit=None, api_visibility="private")
        refresh.click(service.status, outputs=[status], queue=False, api_visibility="private")

        def on_add(paths: list[str] | None, progress=gr.Progress()):
            try:
                log_text = service.add_documents(paths or [], _progress_callback(progress))
            except RagError as e:
                log_text = "⚠️ " + escape_markdown(user_message(e))
            finally:
                # Gradio's upload copies could otherwise be fetched back from its file route.
                for p in paths or []:
                    Path(p).unlink(missing_ok=True)
            return log_text, service.status(), None

        def on_reindex(progress=gr.Progress()):
            try:
                log_text = service.reindex(_progress_callback(progress))
            except RagError as e:
                log_text = "⚠️ " + escape_markdown(user_message(e))
            return log_text, service.status()

        add.click(on_add, inputs=[files], outputs=[index_log, status, files], concurrency_id="index",
                  api_visibility="private")
        reindex.click(on_reindex, outputs=[index_log, status], concurrency_id="index", api_visibility="private")

        def ask(question: str, top_k: int | None = None, temperature: float | None = None,
                history: list[dict] | None = None) -> dict:
            """Answer a question from the indexed documents; returns the `rag ask --json` object."""
            return service.ask(question, top_k, temperature, history)

        gr.api(ask, api_name="ask", concurrency_limit=None)

        def on_load():
            service.warm_up()
            return service.status()

        demo.load(on_load, outputs=[status], queue=False, api_visibility="private")
    # Other events (status, settings) take one slot each; the queue as a whole is a backstop bound.
    demo.queue(default_concurrency_limit=1, max_size=max(16, 4 * (max_waiting + 1)))
    return demo


def _progress_callback(progress: gr.Progress) -> Callable[[int, int], None]:
    progress(0, desc="Reading documents")

    def report(done: int, total: int) -> None:
        if total:
            progress((done, total), desc="Embedding chunks", unit="chunks")

    return report
