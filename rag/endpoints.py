"""Calls to an OpenAI-compatible server (llama.cpp, vLLM, Ollama): its address, timeouts, retries
with back-off for calls that are safe to repeat, and one-line errors naming the server.

Shared by the remote generator (rag.generation.remote) and the remote embedder
(rag.retrieval.remote); httpx does the HTTP (Gradio already depends on it).
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urlsplit

import httpx

from rag.errors import ConfigError, RemoteError

# Attempts for a call that is safe to repeat, and the first back-off (doubled each time): a server
# restarting or briefly overloaded answers within about a second, a dead one fails in under 2 s.
ATTEMPTS = 3
BACKOFF_S = 0.25
# A server's Retry-After is honoured up to this many seconds; beyond it the call fails at once.
MAX_RETRY_AFTER_S = 5.0
# Statuses that mean "try again soon" rather than "this request is wrong".
RETRYABLE = {429, 502, 503, 504}
# Connecting is quick on any working network: a host that does not accept within this is down.
CONNECT_TIMEOUT_S = 5.0


def api_base(url: str, setting: str) -> str:
    """The server's /v1 base URL from what a user typed (`http://host:8000`, `…/v1`, `…/v1/`)."""
    url = (url or "").strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{setting}={url!r} is not an http(s) URL; use e.g. http://127.0.0.1:8000/v1")
    return url if url.endswith("/v1") else url + "/v1"


class Endpoint:
    """One server. Thread-safe: httpx's client pools connections across threads."""

    def __init__(self, url: str, api_key: str = "", timeout_s: float = 60.0, what: str = "the model server",
                 setting: str = "RAG_LLM_URL", attempts: int = ATTEMPTS):
        self.base = api_base(url, setting)
        self.root = self.base.removesuffix("/v1")
        self.what = what
        self.setting = setting
        self.attempts = max(1, attempts)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s)))
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"Endpoint({self.base})"

    def close(self) -> None:
        self.client.close()

    def url(self, path: str) -> str:
        """`path` from the server's root: "/v1/models", or a route of one server's own ("/tokenize")."""
        return self.root + path

    # --- calls ---------------------------------------------------------------------------------

    def get(self, path: str) -> dict:
        """GET, retried (reading never changes the server)."""
        return self._json(path, self._retried(lambda: self.client.get(self.url(path)), path))

    def post(self, path: str, body: dict, retry: bool = True) -> dict:
        """POST; retried when `retry` (the call has no effect beyond its answer, as embeddings)."""
        send = lambda: self.client.post(self.url(path), json=body)  # noqa: E731
        return self._json(path, self._retried(send, path) if retry else self._once(send, path))

    def probe(self, path: str, body: dict) -> dict | None:
        """POST once, None when the server has no such route (what kind of server is it?)."""
        response = self._once(lambda: self.client.post(self.url(path), json=body), path, missing_ok=True)
        if response is None:
            return None
        try:
            return response.json()
        except ValueError:
            return None

    @contextmanager
    def events(self, path: str, body: dict) -> Iterator[Iterator[dict]]:
        """POST a streaming request and yield its server-sent events as objects, until [DONE].

        Never retried: a generation may have begun. Leaving the block closes the connection, which
        tells the server to stop generating."""
        try:
            with self.client.stream("POST", self.url(path), json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._status_error(response, path)
                yield self._parse_events(response, path)
        except httpx.HTTPError as e:
            raise self._transport_error(e) from None

    def _parse_events(self, response: httpx.Response, path: str) -> Iterator[dict]:
        try:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue  # comments (keep-alives), event names, blank separators
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    event = json.loads(data)
                except ValueError:
                    raise RemoteError(f"{self.what} at {self.base} streamed something that is not JSON ({data[:80]!r}); "
                                      f"is {self.setting} an OpenAI-compatible server?") from None
                if isinstance(event, dict) and event.get("error"):
                    raise RemoteError(f"{self.what} at {self.base} failed while answering: {_message(event)}")
                yield event
        except httpx.HTTPError as e:
            raise self._transport_error(e) from None

    # --- retries and errors --------------------------------------------------------------------

    def _once(self, send, path: str, missing_ok: bool = False) -> httpx.Response | None:
        try:
            response = send()
        except httpx.HTTPError as e:
            raise self._transport_error(e) from None
        if missing_ok and response.status_code in (404, 405):
            return None
        if response.status_code >= 400:
            raise self._status_error(response, path)
        return response

    def _retried(self, send, path: str) -> httpx.Response:
        delay = BACKOFF_S
        for attempt in range(1, self.attempts + 1):
            last = attempt == self.attempts
            try:
                response = send()
            except (httpx.TransportError, httpx.TimeoutException) as e:
                if last:
                    raise self._transport_error(e) from None
                time.sleep(delay)
                delay *= 2
                continue
            if response.status_code in RETRYABLE and not last:
                wait = _retry_after(response.headers.get("retry-after"), delay)
                if wait <= MAX_RETRY_AFTER_S:
                    time.sleep(wait)
                    delay *= 2
                    continue
            if response.status_code >= 400:
                raise self._status_error(response, path)
            return response
        raise AssertionError("unreachable")

    def _json(self, path: str, response: httpx.Response) -> dict:
        try:
            out = response.json()
        except ValueError:
            out = None
        if not isinstance(out, dict):
            raise RemoteError(f"{self.what} at {self.base} answered {path} with something that is not a JSON object; "
                              f"is {self.setting} an OpenAI-compatible server?")
        return out

    def _transport_error(self, e: httpx.HTTPError) -> RemoteError:
        if isinstance(e, httpx.ConnectTimeout):
            reason = f"did not accept a connection within {CONNECT_TIMEOUT_S:g} s"
        elif isinstance(e, httpx.TimeoutException):
            reason = f"sent nothing for {self.timeout_s:g} s (RAG_REMOTE_TIMEOUT_S)"
        elif isinstance(e, httpx.ConnectError):
            reason = "is not reachable (" + (str(e).split("] ")[-1] or "connection failed") + ")"
        else:
            reason = f"broke the connection ({type(e).__name__})"
        return RemoteError(f"{self.what} at {self.base} {reason}; start it or fix {self.setting}")

    def _status_error(self, response: httpx.Response, path: str) -> RemoteError:
        code = response.status_code
        if code in (401, 403):
            key = self.setting.removesuffix("_URL") + "_API_KEY"
            return RemoteError(f"{self.what} at {self.base} refused the request (HTTP {code}); set {key} to its API key")
        if code in (404, 405):
            return RemoteError(f"{self.what} at {self.base} has no {path} (HTTP {code}); is {self.setting} an OpenAI-compatible server?")
        try:
            detail = _message(response.json())
        except ValueError:
            detail = response.text[:200].strip()
        return RemoteError(f"{self.what} at {self.base} answered HTTP {code} to {path}: {detail or response.reason_phrase}")


def _message(body) -> str:
    """The human part of an error body, whichever shape the server uses."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or error.get("detail") or error)[:300]
        return str(error)[:300]
    return str(body)[:300]


def _retry_after(header: str | None, default: float) -> float:
    try:
        return max(0.0, float(header)) if header else default
    except ValueError:
        return default
