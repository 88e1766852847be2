"""The chat service: what the page's events call, kept free of widgets so tests can call it.

Sessions and their turns, streamed answers behind the model gate, the `ask` API, model switching,
index status, adding uploaded documents and re-indexing. Gradio is only imported to raise the error it shows an API
caller (gr.Error), at the moment one is raised.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

from rag.answer.assistant import Assistant, Replace, clean_question
from rag.apps.web.gate import DEFAULT_MAX_WAITING, ModelGate
from rag.apps.web.render import (
    error_markdown,
    escape_markdown,
    render_answer,
    render_sources,
    user_message,
)
from rag.apps.web.uploads import save_upload
from rag.config import Settings
from rag.errors import BusyError, IndexMissingError, InputError, RagError
from rag.generation.base import DeferredGenerator
from rag.generation.llama import Generator
from rag.generation.models import model_label
from rag.schema import Answer

log = logging.getLogger(__name__)

_POLL_S = 0.25


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
                 model_loader: ModelLoader | None = None, gate: ModelGate | None = None):
        self.assistant = assistant
        self.settings = settings
        # One gate per model: the chat and the HTTP API (rag serve) queue at the same one.
        self.gate = gate or ModelGate(max_waiting)
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
            raise api_error(e) from None
        return answer.to_dict()

    # ---- settings ----

    def switch_model(self, spec: str) -> str:
        """Replace the process's one model (waits for the answer in progress)."""
        if spec == self.model_spec:
            return self.status()
        ticket = self.gate.join()
        try:
            self.gate.hold(ticket)
            second = getattr(self.assistant, "second", None)
            if isinstance(second, DeferredGenerator) and second.name == model_label(spec, self.settings.requantize):
                generator, label = second.generator(), second.name  # the second model, loaded once, answers first now
            else:
                generator, label = self.model_loader(spec)
            old = self.assistant.generator
            self.assistant.generator, self.assistant.model_label = generator, label
            self.model_spec = spec
            del old  # the previous llama.cpp model is freed with its last reference
        except RagError as e:
            raise api_error(e) from None
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
        lines += [f"Warning, {escape_markdown(rel)}: {escape_markdown(what)}" for rel, what in stats.warnings]
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
                lang = self.assistant.retriever.data.manifest.language
                if lang:  # the answer checks' number, date and money words of the documents' language
                    from rag.text import values

                    values.warm((lang,))
                from rag.answer import question_kind

                question_kind.warm(self.settings.cache_dir, self.settings.n_threads)  # the model that reads what kind of fact a question asks for
            except Exception:  # noqa: BLE001 - the first question will report the problem
                log.warning("warm-up failed", exc_info=True)
            second = getattr(self.assistant, "second", None)
            if second is not None and second.name != self.assistant.model_label:  # the judge of answers and quotes: loaded last
                try:
                    second.llm
                except Exception as e:  # noqa: BLE001 - answers keep their quotes; said once here
                    log.warning("the second model %s is not loaded: %s", second.name, e)

        threading.Thread(target=run, name="rag-warm-up", daemon=True).start()


def api_error(error: Exception) -> Exception:
    """The error Gradio reports to an API caller: user_message's one sentence, no traceback."""
    from gradio import Error  # here, not at the top: the service runs without a page

    return Error(user_message(error), print_exception=False)


def _snapshot(session: Session) -> list[dict]:
    """The chat as it is now; later pieces must not change a value already handed to Gradio."""
    return [dict(m) for m in session.messages]


def _copy_session(session: Session | None) -> Session:
    if session is None:
        return Session()
    return Session(messages=[dict(m) for m in session.messages], turns=list(session.turns))


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)
