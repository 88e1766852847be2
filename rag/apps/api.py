"""`rag serve`'s HTTP API on the same Assistant as `rag ask`: OpenAI-compatible `/v1/chat/completions`
(streamed or not) and `/v1/models`, so the `openai` client, Open WebUI or LibreChat can use rag as a
model; `/v1/ask`, returning exactly `rag ask --json`'s object; and `/health`.

Answers keep their [n] markers; the citations travel in an extra `citations` field of the response
(and of the last streamed event). A streamed answer is sent once the engine has checked it, never a
sentence the check then took back (an OpenAI client cannot erase text); `"rag_live": true` streams
the model's pieces as they come instead, with the checked text in the last event's `replace` when it
differs, for clients that can replace what they showed.

Questions queue at a gate (rag.apps.web.gate): one answers at a time on the in-process model, up to
RAG_REMOTE_PARALLEL on a model server, and a bounded line waits; beyond it, 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import math
import threading
import time
import uuid
from typing import Any, AsyncIterator, Callable, Iterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from rag.answer.assistant import Assistant, Replace, clean_question
from rag.apps.web.gate import ModelGate
from rag.config import Settings
from rag.errors import BusyError, IndexMissingError, InputError, RagError, RemoteError
from rag.schema import Answer

log = logging.getLogger(__name__)

MODEL_ID = "rag"
# Earlier turns kept for the follow-up rewrite: the rewrite reads only the last few.
MAX_HISTORY_MESSAGES = 12
POLL_S = 0.25
PING_S = 10  # SSE keep-alive comments while a question waits or is being answered


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.headers = status, message, kind, headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"message": self.message, "type": self.kind, "code": self.status}},
                            self.status, headers=self.headers)


def status_of(error: RagError) -> tuple[int, str]:
    if isinstance(error, InputError):
        return 400, "invalid_request_error"
    if isinstance(error, BusyError):
        return 503, "server_busy"
    if isinstance(error, RemoteError):
        return 502, "upstream_error"
    if isinstance(error, IndexMissingError):
        return 503, "no_index"
    return 500, "server_error"


class Job:
    """One question answered on a worker thread once the gate lets it through; its items come back
    to the event loop. cancel() (the client left) stops the generation at its next piece and closes
    the engine's generator on that thread, which releases the model."""

    def __init__(self, gate: ModelGate, ticket: object, run: Callable[[], Iterator], loop: asyncio.AbstractEventLoop):
        self.gate, self.ticket, self.run, self.loop = gate, ticket, run, loop
        self.items: asyncio.Queue = asyncio.Queue()
        self.cancelled = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._work, daemon=True, name="rag-api-job")
        self.thread.start()

    def _push(self, kind: str, value: Any = None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.items.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancelled.set()

    def _work(self) -> None:
        try:
            while not self.gate.wait(self.ticket, POLL_S):
                if self.cancelled.is_set():
                    return
            if self.cancelled.is_set():  # the client left while this waited
                return
            stream = self.run()
            try:
                for item in stream:
                    if self.cancelled.is_set():
                        break
                    self._push("item", item)
            finally:
                stream.close()  # on this thread: the generator runs its cleanup, the model lock is released
        except RagError as e:
            self._push("error", e)
        except Exception as e:  # a bug or a native failure: logged here, one sentence for the client
            log.exception("answering failed")
            self._push("error", RagError(f"answering failed ({type(e).__name__}); see the server log"))
        finally:
            self.gate.leave(self.ticket)
            self.done.set()
            self._push("end")

    def cancel(self) -> None:
        self.cancelled.set()

    async def __aiter__(self) -> AsyncIterator[tuple[str, Any]]:
        while True:
            kind, value = await self.items.get()
            if kind == "end":
                return
            yield kind, value


class Api:
    def __init__(self, assistant: Assistant, settings: Settings, gate: ModelGate):
        self.assistant, self.settings, self.gate = assistant, settings, gate
        self.created = int(time.time())
        self.answer_s = 2.0  # a running average of answer times, for Retry-After

    # --- requests ------------------------------------------------------------------------------

    def authorize(self, request: Request) -> None:
        key = self.settings.api_key
        if not key:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise ApiError(401, "missing or wrong API key; send it as 'Authorization: Bearer <RAG_API_KEY>'",
                           "authentication_error", {"WWW-Authenticate": "Bearer"})

    async def body(self, request: Request) -> dict:
        """The request's JSON object, read no further than the size limit."""
        self.authorize(request)
        limit = self.settings.max_request_kb * 1024
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"the request is {int(declared)} bytes; the limit is {limit} (RAG_MAX_REQUEST_KB)")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limit:
                raise ApiError(413, f"the request is over {limit} bytes (RAG_MAX_REQUEST_KB)")
        try:
            data = json.loads(raw.decode("utf-8"))  # decoded here: json.loads would also take UTF-16 and UTF-32
        except UnicodeDecodeError:
            raise ApiError(400, "the body is not UTF-8 JSON") from None
        except ValueError as e:
            raise ApiError(400, f"the body is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object")
        return data

    def question(self, text: Any, field: str) -> str:
        if not isinstance(text, str):
            raise ApiError(400, f"{field} must be a string")
        if len(text) > self.settings.max_question_chars:
            raise ApiError(400, f"{field} is {len(text)} characters; the limit is {self.settings.max_question_chars} "
                                "(RAG_MAX_QUESTION_CHARS)")
        try:
            return clean_question(text)
        except InputError as e:
            raise ApiError(400, str(e)) from None

    def options(self, data: dict) -> dict:
        """The engine's per-question options a request may set: top_k and temperature."""
        out = {}
        top_k = data.get("top_k")
        if top_k is not None:
            if not isinstance(top_k, int) or isinstance(top_k, bool) or not 0 <= top_k <= 20:
                raise ApiError(400, "top_k must be an integer from 0 to 20")
            out["top_k"] = top_k
        temperature = data.get("temperature")
        if temperature is not None:
            if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not 0 <= temperature <= 2:
                raise ApiError(400, "temperature must be a number from 0 to 2")
            out["temperature"] = float(temperature)
        return out

    def history(self, messages: Any) -> list[dict]:
        if not isinstance(messages, list):
            raise ApiError(400, "history must be a list of {role, content} messages")
        turns = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool", "developer"):
                raise ApiError(400, f"message {i} needs a role (user, assistant or system) and a content")
            if m["role"] in ("user", "assistant"):
                turns.append({"role": m["role"], "content": text_of(m.get("content"), i)})
        return turns[-MAX_HISTORY_MESSAGES:]

    def admit(self, run: Callable[[], Iterator]) -> Job:
        try:
            ticket = self.gate.join()
        except BusyError as e:
            lanes = self.gate.lanes
            wait = math.ceil(self.answer_s * (self.gate.max_waiting + lanes) / lanes)
            raise ApiError(503, str(e), "server_busy", {"Retry-After": str(min(max(wait, 1), 120))}) from None
        return Job(self.gate, ticket, run, asyncio.get_running_loop())

    def timed(self, stream: Iterator) -> Iterator:
        """The engine's stream, timing each answer for the Retry-After estimate."""
        t0 = time.perf_counter()
        yield from stream
        self.answer_s = 0.8 * self.answer_s + 0.2 * (time.perf_counter() - t0)

    async def answer(self, job: Job, request: Request) -> Answer:
        """The final Answer of a job, cancelling it if the client goes away first."""
        answer = None
        try:
            while True:
                try:  # the queue, not the job's async iterator: a timeout must not end that iterator
                    kind, value = await asyncio.wait_for(job.items.get(), POLL_S)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        raise ApiError(499, "the client closed the request") from None
                    continue
                if kind == "end":
                    break
                if kind == "error":
                    status, kind_name = status_of(value)
                    raise ApiError(status, str(value), kind_name)
                if isinstance(value, Answer):
                    answer = value
        finally:
            if answer is None:
                job.cancel()
        if answer is None:
            raise ApiError(500, "the engine gave no answer", "server_error")
        return answer


def text_of(content: Any, i: int) -> str:
    """A message's text: a string, or OpenAI's list of content parts (only text parts are read)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    if content is None:
        return ""
    raise ApiError(400, f"message {i}'s content must be a string or a list of text parts")


def citations_of(answer: Answer) -> list[dict]:
    """Each cited [n]: file, page/section where known, character span and the passage text."""
    return [dataclasses.asdict(c) for c in answer.citations]


def usage_of(answer: Answer) -> dict:
    p, c = int(answer.timings.get("prompt_tokens", 0)), int(answer.timings.get("completion_tokens", 0))
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def create_api(assistant: Assistant, settings: Settings, gate: ModelGate | None = None, max_waiting: int = 8) -> FastAPI:
    """The API app; `rag serve` mounts the web chat on it. Builds, never listens."""
    from sse_starlette.sse import EventSourceResponse

    api = Api(assistant, settings, gate or ModelGate(max_waiting))
    app = FastAPI(title="rag", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.api = api

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        return e.response()

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": assistant.model_label}

    @app.get("/v1/models")
    async def list_models(request: Request):
        api.authorize(request)
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": api.created, "owned_by": "rag",
                                            "rag_model": assistant.model_label}]}

    @app.post("/v1/ask")
    async def ask(request: Request):
        data = await api.body(request)
        question = api.question(data.get("question"), "question")
        options = api.options(data)
        history = api.history(data.get("history") or [])
        job = api.admit(lambda: api.timed(assistant.stream(question, history=history, **options)))
        return (await api.answer(job, request)).to_dict()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        data = await api.body(request)
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "messages must be a non-empty list")
        last = messages[-1]
        if not isinstance(last, dict) or last.get("role") != "user":
            raise ApiError(400, "the last message must be the user's question (role 'user')")
        question = api.question(text_of(last.get("content"), len(messages) - 1), "the question")
        history = api.history(messages[:-1])
        options = api.options(data)
        stream, live = data.get("stream", False), data.get("rag_live", False)
        if not isinstance(stream, bool) or not isinstance(live, bool):
            raise ApiError(400, "stream and rag_live must be true or false")
        stream_options = data.get("stream_options")
        include_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
        job = api.admit(lambda: api.timed(assistant.stream(question, history=history, **options)))
        reply_id = "chatcmpl-" + uuid.uuid4().hex
        if not stream:
            answer = await api.answer(job, request)
            return {"id": reply_id, "object": "chat.completion", "created": int(time.time()), "model": MODEL_ID,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text}, "finish_reason": "stop"}],
                    "usage": usage_of(answer), "citations": citations_of(answer)}
        return EventSourceResponse(events(job, reply_id, live, include_usage), ping=PING_S, sep="\n")

    return app


async def events(job: Job, reply_id: str, live: bool, include_usage: bool) -> AsyncIterator[str]:
    """A chat completion as OpenAI streams it; sse-starlette cancels this when the client leaves,
    and the finally clause then stops the generation."""
    created = int(time.time())

    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        return json.dumps({"id": reply_id, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID,
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}, ensure_ascii=False)

    try:
        yield chunk({"role": "assistant", "content": ""})
        shown = ""
        async for kind, value in job:
            if kind == "error":
                yield json.dumps({"error": {"message": str(value), "type": status_of(value)[1]}}, ensure_ascii=False)
                break
            if isinstance(value, Answer):
                extra: dict = {"citations": citations_of(value)}
                if include_usage:
                    extra["usage"] = usage_of(value)
                if not live:
                    yield chunk({"content": value.text})
                elif value.text != shown.strip():
                    extra["replace"] = value.text  # what the client showed is to be replaced by this
                yield chunk({}, "stop", **extra)
            elif live and not isinstance(value, Replace):
                shown += value
                yield chunk({"content": str(value)})
        yield "[DONE]"
    finally:
        job.cancel()
