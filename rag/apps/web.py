"""Web chat: a Gradio front end over the same Assistant as `rag ask`.

`create_app(assistant, settings)` builds the Blocks and never launches; `rag serve` and app.py do.
Everything the page shows that comes from a document or from the model is escaped here: the
sources panel is built with html.escape, and chat messages have every Markdown character escaped,
so no markup, link or remote image from a document can become active in the browser.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any, Callable, Iterator

# Set before Gradio is imported: it reads them at import time. Nothing may phone home.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import click  # noqa: E402
import gradio as gr  # noqa: E402

from rag.answer.assistant import Assistant, Replace, clean_question  # noqa: E402
from rag.answer.citations import MARKER  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.errors import BusyError, IndexMissingError, InputError, RagError  # noqa: E402
from rag.generation.llama import Generator  # noqa: E402
from rag.ingest.loaders import SUPPORTED_SUFFIXES, looks_binary  # noqa: E402
from rag.schema import Answer, Citation  # noqa: E402
from rag.text.sentences import answer_sentences, split_segments  # noqa: E402
from rag.text.support import shared, terms  # noqa: E402

log = logging.getLogger(__name__)

UPLOAD_SUFFIXES = sorted(SUPPORTED_SUFFIXES)
# Requests allowed to wait for the model while one is answered; beyond that users get "busy" at
# once instead of an unbounded wait.
DEFAULT_MAX_WAITING = 8
_POLL_S = 0.25

# --------------------------------------------------------------------------------------------
# Rendering: model and document text -> safe Markdown / HTML
# --------------------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>&:$@=\"'^])")
_ESCAPED_MARKER = re.compile(r"\\\[(\d{1,3})\\\]")


def escape_markdown(text: str) -> str:
    """Every ASCII punctuation character a Markdown or HTML parser could act on, backslash-escaped:
    the chat shows the text literally (no links, images, tags, autolinks or LaTeX)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def cite_id(turn: int, n: int) -> str:
    return f"rag-src-{turn}-{n}"


def render_answer(text: str, turn: int, citations: tuple[Citation, ...] = ()) -> str:
    """Chat message for an answer: escaped text, [n] markers turned into links to the sources panel."""
    sources = {c.n: c.source for c in citations}

    def link(m: re.Match) -> str:
        n = int(m.group(1))
        title = escape(sources.get(n, f"source {n}"), quote=True)
        return f'<a class="rag-cite" href="#{cite_id(turn, n)}" title="{title}">[{n}]</a>'

    return _ESCAPED_MARKER.sub(link, escape_markdown(text))


def supporting_spans(passage: str, claims: list[str], lang: str) -> list[tuple[int, int]]:
    """Spans of the passage's sentences that best support the claims (the answer sentences citing
    it), scored as the engine scores support (rag.text.support); the whole passage when none clearly does."""
    segments = split_segments(passage)
    if not segments:
        return [(0, len(passage))]
    chosen: set[int] = set()
    for claim in claims:
        words = terms(MARKER.sub(" ", claim), lang)
        if not words:
            continue
        scores = [shared(words, passage[s:e], lang) / len(words) for s, e in segments]
        best = max(range(len(scores)), key=scores.__getitem__)
        if scores[best] >= 0.2:
            chosen.add(best)
    if not chosen:
        return [(0, len(passage))]
    return [segments[i] for i in sorted(chosen)]


def highlight(passage: str, spans: list[tuple[int, int]], offset: int = 0) -> str:
    """Escaped passage with the spans wrapped in <mark> (titled with their document position)."""
    out, pos = [], 0
    for s, e in spans:
        out.append(escape(passage[pos:s]))
        out.append(f'<mark title="characters {offset + s}–{offset + e}">{escape(passage[s:e])}</mark>')
        pos = e
    out.append(escape(passage[pos:]))
    return "".join(out)


def claims_for(answer_text: str, n: int) -> list[str]:
    return [answer_text[s:e] for s, e in answer_sentences(answer_text) if f"[{n}]" in answer_text[s:e]]


def render_sources(answer: Answer | None, turn: int) -> str:
    """The sources panel for one answer: each cited passage with file, position and the cited
    span highlighted; then the other retrieved passages, folded. Every document string is escaped."""
    if answer is None:
        return '<div class="rag-sources-empty">Sources of the latest answer appear here.</div>'
    parts = [f'<div class="rag-sources-q">Sources for: <q>{escape(answer.question)}</q></div>']
    if answer.standalone_question and answer.standalone_question != answer.question:
        parts.append('<details class="rag-standalone"><summary>Question as searched</summary>'
                     f"<p>{escape(answer.standalone_question)}</p></details>")
    if not answer.citations:
        parts.append('<div class="rag-sources-empty">No passage is cited in this answer.</div>')
    for c in answer.citations:
        spans = supporting_spans(c.text, claims_for(answer.text, c.n), answer.language)
        parts.append(
            f'<div class="rag-source" id="{cite_id(turn, c.n)}">'
            f'<div class="rag-source-head"><span class="rag-badge">[{c.n}]</span> '
            f'<span class="rag-file">{escape(c.source)}</span> '
            f'<span class="rag-pos">characters {c.start}–{c.end}</span></div>'
            f'<div class="rag-passage">{highlight(c.text, spans, c.start)}</div></div>'
        )
    cited = {(c.source, c.start) for c in answer.citations}
    others = [h for h in answer.retrieved if (h.chunk.source, h.chunk.start) not in cited]
    if others:
        items = "".join(
            f'<div class="rag-other"><span class="rag-file">{escape(h.chunk.source)}</span> '
            f'<span class="rag-pos">characters {h.chunk.start}–{h.chunk.end}</span>'
            f'<div class="rag-passage">{escape(h.chunk.text)}</div></div>'
            for h in others
        )
        parts.append(f"<details><summary>Other passages given to the model ({len(others)})</summary>{items}</details>")
    return "".join(parts)


def user_message(error: Exception) -> str:
    """One sentence for the chat instead of a traceback."""
    if isinstance(error, RagError):
        text = str(error)
        if isinstance(error, IndexMissingError):
            text += "; in this chat you can also add documents or press Re-index in the Documents tab"
    else:
        text = f"the model failed ({type(error).__name__}: {error}); try again, or choose another model in Settings"
    return text[:1].upper() + text[1:]


def error_markdown(error: Exception) -> str:
    return "⚠️ " + escape_markdown(user_message(error))


# --------------------------------------------------------------------------------------------
# Serving: one model call at a time, a bounded line of waiting requests
# --------------------------------------------------------------------------------------------


class ModelGate:
    """First come, first served access to the one model; at most max_waiting requests wait.

    Gradio's own queue would also serialise calls, but a full Gradio queue answers with a generic
    error; this gate lets a waiting user see their place in line and a full line say "busy".
    """

    def __init__(self, max_waiting: int = DEFAULT_MAX_WAITING):
        self.max_waiting = max_waiting
        self._line: list[object] = []  # the head holds the model
        self._cond = threading.Condition()

    def join(self) -> object:
        with self._cond:
            if len(self._line) > self.max_waiting:
                raise BusyError(f"the assistant is busy ({len(self._line)} questions in progress or waiting); try again in a minute")
            ticket = object()
            self._line.append(ticket)
            return ticket

    def wait(self, ticket: object, timeout: float) -> bool:
        """True once ticket is at the head of the line."""
        with self._cond:
            return self._cond.wait_for(lambda: self._line[0] is ticket, timeout)

    def ahead(self, ticket: object) -> int:
        with self._cond:
            return self._line.index(ticket)

    def leave(self, ticket: object) -> None:
        with self._cond:
            if ticket in self._line:
                self._line.remove(ticket)
            self._cond.notify_all()

    def hold(self, ticket: object) -> None:
        """Block until ticket is at the head (for calls that cannot show a waiting message)."""
        while not self.wait(ticket, 1.0):
            pass


# --------------------------------------------------------------------------------------------
# The chat service: what the page's events call (kept free of widgets, so tests can call it)
# --------------------------------------------------------------------------------------------


@dataclass
class Turn:
    question: str
    answer: Answer | None = None  # None while answering, or when it failed or was stopped


@dataclass
class Session:
    """One browser session's conversation; Gradio keeps one copy per session (gr.State)."""

    messages: list[dict] = field(default_factory=list)  # what the Chatbot shows
    turns: list[Turn] = field(default_factory=list)

    def history(self) -> list[dict]:
        """Earlier turns for the follow-up rewrite: the question as it was searched, and the answer."""
        out = []
        for t in self.turns:
            if t.answer is not None:
                out.append({"role": "user", "content": t.answer.standalone_question or t.question})
                out.append({"role": "assistant", "content": t.answer.text})
        return out


ModelLoader = Callable[[str], tuple[Generator, str]]


def load_model(settings: Settings) -> ModelLoader:
    """Builds the generator for a preset through build_assistant, the one place real models are built."""

    def load(spec: str) -> tuple[Generator, str]:
        from rag.answer.assistant import build_assistant

        built = build_assistant(settings, model=spec)
        return built.generator, built.model_label

    return load


class ChatService:
    def __init__(self, assistant: Assistant, settings: Settings, max_waiting: int = DEFAULT_MAX_WAITING,
                 model_loader: ModelLoader | None = None):
        self.assistant = assistant
        self.settings = settings
        self.gate = ModelGate(max_waiting)
        self.model_loader = model_loader or load_model(settings)
        self.model_spec = settings.model
        self._warm = threading.Event()

    # ---- chat ----

    def respond(self, message: str, session: Session | None, top_k: float | None = None,
                temperature: float | None = None) -> Iterator[tuple[str, list[dict], str | None, Session]]:
        """Yields (textbox value, chat messages, sources panel HTML or None to keep it, session)."""
        session = _copy_session(session)
        history = session.history()
        # One turn per question, answered or not, so turn numbers match the citation anchors.
        turn = len(session.turns)
        session.turns.append(Turn(message or ""))
        session.messages.append({"role": "user", "content": escape_markdown(message or "")})
        answer_msg = {"role": "assistant", "content": "…"}
        session.messages.append(answer_msg)
        try:
            question = clean_question(message)
        except InputError as e:
            answer_msg["content"] = error_markdown(e)
            yield "", _snapshot(session), None, session
            return
        yield "", _snapshot(session), None, session

        answer, text = None, ""
        try:
            ticket = self.gate.join()
        except BusyError as e:
            answer_msg["content"] = error_markdown(e)
            yield "", _snapshot(session), None, session
            return
        try:
            while not self.gate.wait(ticket, _POLL_S):
                answer_msg["content"] = f"⏳ Waiting for the model ({self.gate.ahead(ticket)} ahead of you)…"
                yield "", _snapshot(session), None, session
            answer_msg["content"] = "…"
            for item in self.assistant.stream(question, top_k=_int_or_none(top_k), temperature=temperature,
                                              history=history or None):
                if isinstance(item, Answer):
                    answer = item
                else:
                    # Replace: the engine's evidence check rewrote what was streamed.
                    text = str(item) if isinstance(item, Replace) else text + item
                    answer_msg["content"] = render_answer(text, turn)
                    yield "", _snapshot(session), None, session
        except Exception as e:  # noqa: BLE001 - any failure becomes one readable line, never a traceback
            if not isinstance(e, RagError):
                log.exception("answering %r failed", question)
            answer_msg["content"] = (render_answer(text, turn) + "\n\n" if text else "") + error_markdown(e)
            yield "", _snapshot(session), None, session
            return
        finally:
            self.gate.leave(ticket)

        answer_msg["content"] = render_answer(answer.text, turn, answer.citations)
        if answer.standalone_question and answer.standalone_question != answer.question:
            # Shown folded above the answer: the question as it was actually searched.
            session.messages.insert(len(session.messages) - 1, {
                "role": "assistant", "content": escape_markdown(answer.standalone_question),
                "metadata": {"title": "Question as searched", "status": "done"}})
        session.turns[turn] = Turn(question, answer)
        yield "", _snapshot(session), render_sources(answer, turn), session

    def show_turn(self, session: Session | None, index: int) -> str:
        """Sources panel for the turn a chat message belongs to (a click on an earlier answer)."""
        if not session or not session.turns:
            return render_sources(None, 0)
        # Each turn shows a user message, maybe a folded rewrite, and the answer.
        turn = sum(1 for m in session.messages[: index + 1] if m["role"] == "user") - 1
        turn = min(max(turn, 0), len(session.turns) - 1)
        if session.turns[turn].answer is None:
            return '<div class="rag-sources-empty">This question has no answer, so no sources.</div>'
        return render_sources(session.turns[turn].answer, turn)

    # ---- API ----

    def ask(self, question: str, top_k: int | None = None, temperature: float | None = None,
            history: list[dict] | None = None) -> dict:
        """One answer as the same object `rag ask --json` prints (Answer.to_dict())."""
        try:
            question = clean_question(question)
            ticket = self.gate.join()
            try:
                self.gate.hold(ticket)
                answer = self.assistant.ask(question, top_k=top_k, temperature=temperature, history=history or None)
            finally:
                self.gate.leave(ticket)
        except Exception as e:  # noqa: BLE001
            if not isinstance(e, RagError):
                log.exception("answering %r failed", question)
            raise gr.Error(user_message(e), print_exception=False) from None
        return answer.to_dict()

    # ---- settings ----

    def switch_model(self, spec: str) -> str:
        """Replace the process's one model (waits for the answer in progress)."""
        if spec == self.model_spec:
            return self.status()
        ticket = self.gate.join()
        try:
            self.gate.hold(ticket)
            generator, label = self.model_loader(spec)
            old = self.assistant.generator
            self.assistant.generator, self.assistant.model_label = generator, label
            self.model_spec = spec
            del old  # the previous llama.cpp model is freed with its last reference
        except RagError as e:
            raise gr.Error(user_message(e), print_exception=False) from None
        finally:
            self.gate.leave(ticket)
        return self.status()

    def status(self) -> str:
        """Index and model status as Markdown (file names escaped)."""
        lines = [f"**Model:** {escape_markdown(self.assistant.model_label)}"]
        try:
            manifest = self.assistant.retriever.data.manifest
        except IndexMissingError:
            lines.append(f"**Index:** none yet in {escape_markdown(str(self.assistant.retriever.index_dir))} — "
                         "add documents or press Re-index in the Documents tab.")
            lines.append(f"**Documents folder:** {escape_markdown(str(self.docs_dir()))}")
            return "  \n".join(lines)
        except RagError as e:
            lines.append("**Index:** " + escape_markdown(user_message(e)))
            return "  \n".join(lines)
        built = datetime.fromtimestamp(manifest.built_at).strftime("%Y-%m-%d %H:%M:%S")
        lines += [
            f"**Index:** {len(manifest.files)} files, {manifest.n_chunks} chunks, language {escape_markdown(manifest.language)}",
            f"**Embedder:** {escape_markdown(manifest.embedder)} ({manifest.dim} dimensions)",
            f"**Built:** {built}",
            f"**Documents folder:** {escape_markdown(str(self.docs_dir()))}",
        ]
        names = ", ".join(escape_markdown(n) for n in sorted(manifest.files)[:50])
        more = f" … and {len(manifest.files) - 50} more" if len(manifest.files) > 50 else ""
        return "  \n".join(lines) + f"\n\n**Files:** {names}{more}"

    # ---- documents ----

    def docs_dir(self) -> Path:
        """The folder the live index was built from (so an update keeps its files), else the configured one."""
        try:
            data = self.assistant.retriever.data
            if data.manifest.docs_dir:
                return Path(data.manifest.docs_dir)
        except RagError:
            pass
        return Path(self.settings.docs_dir)

    def reindex(self, progress: Callable[[int, int], None] | None = None) -> str:
        from rag.ingest.indexing import build_index

        docs = self.docs_dir()
        settings = self.settings.replace(docs_dir=docs, index_dir=self.assistant.retriever.index_dir)
        stats = build_index(settings, self.assistant.retriever.embedder, progress=progress)
        lines = [f"Indexed {stats.files} files, {stats.chunks} chunks: {len(stats.added)} added, "
                 f"{len(stats.changed)} changed, {len(stats.removed)} removed, {stats.unchanged} unchanged "
                 f"({stats.embedded_chunks} chunks embedded in {stats.seconds:.1f} s)."]
        lines += [f"Skipped {escape_markdown(rel)}: {escape_markdown(why)}" for rel, why in stats.skipped]
        return "  \n".join(lines)

    def add_documents(self, paths: list[str], progress: Callable[[int, int], None] | None = None) -> str:
        """Copy checked uploads into the documents folder, then update the index incrementally."""
        docs = self.docs_dir()
        docs.mkdir(parents=True, exist_ok=True)
        saved, lines = [], []
        for p in paths or []:
            try:
                saved.append(save_upload(Path(p), docs, self.settings.max_file_mb))
            except InputError as e:
                lines.append("⚠️ " + escape_markdown(user_message(e)))
        if saved:
            lines.insert(0, "Added " + ", ".join(escape_markdown(n) for n in saved) + ".")
            lines.append(self.reindex(progress))
        elif not lines:
            lines.append("No file given.")
        return "  \n".join(lines)

    # ---- start-up ----

    def warm_up(self) -> None:
        """Load the models in the background on the first page view, so the first answer is not
        also paying for loading them."""
        if self._warm.is_set():
            return
        self._warm.set()

        def run() -> None:
            try:
                warm = getattr(self.assistant, "warm", None)  # the engine's own warm-up, when it has one
                if callable(warm):
                    warm()
                else:
                    getattr(self.assistant.generator, "llm", None)  # loads a llama.cpp model
                self.assistant.retriever.embedder.embed(["warm-up"])
            except Exception:  # noqa: BLE001 - the first question will report the problem
                log.warning("warm-up failed", exc_info=True)

        threading.Thread(target=run, name="rag-warm-up", daemon=True).start()


_SAFE_NAME = re.compile(r"[^\w.\- ]+", re.UNICODE)


def save_upload(path: Path, docs_dir: Path, max_file_mb: float) -> str:
    """Check an uploaded file (type, size, text content) and copy it into docs_dir; its name."""
    original = Path(getattr(path, "orig_name", None) or path.name)
    name = _SAFE_NAME.sub("_", original.name).strip(" .") or "document"
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(f"{original.name} is not a supported file; upload {', '.join(UPLOAD_SUFFIXES)} files")
    size = path.stat().st_size
    if size > max_file_mb * 1_000_000:
        raise InputError(f"{original.name} is larger than {max_file_mb:g} MB; split it or raise RAG_MAX_FILE_MB")
    data = path.read_bytes()
    if not data.strip():
        raise InputError(f"{original.name} is empty; upload a file with text in it")
    if looks_binary(data):
        raise InputError(f"{original.name} is not a text file; upload {', '.join(UPLOAD_SUFFIXES)} files")
    target = docs_dir / name
    tmp = docs_dir / f".{name}.upload"
    shutil.copyfile(path, tmp)
    os.replace(tmp, target)  # the indexer never sees a half-written file
    return name


def _snapshot(session: Session) -> list[dict]:
    """The chat as it is now; later pieces must not change a value already handed to Gradio."""
    return [dict(m) for m in session.messages]


def _copy_session(session: Session | None) -> Session:
    if session is None:
        return Session()
    return Session(messages=[dict(m) for m in session.messages], turns=list(session.turns))


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------

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


def create_app(assistant: Assistant, settings: Settings, max_waiting: int = DEFAULT_MAX_WAITING,
               model_loader: ModelLoader | None = None) -> gr.Blocks:
    """The chat page and its API (api_name "ask"); never launches."""
    from rag.generation.models import PRESETS

    service = ChatService(assistant, settings, max_waiting, model_loader)
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


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


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
