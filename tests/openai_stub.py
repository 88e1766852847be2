"""A scripted OpenAI-compatible HTTP server on loopback, for what a real server will not do on cue:
fail, stall, answer in the wrong shape, stream a stop string. Real sockets, real HTTP; the slow
tier runs the same client code against llama.cpp's real server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class Stub:
    """routes: "METHOD /path" -> handler(request_body) returning (status, body) where body is a dict
    (sent as JSON), a str (sent as is) or a list of dicts (sent as server-sent events, then [DONE])."""

    def __init__(self, routes: dict[str, Callable[[dict], tuple]], chunk_delay: float = 0.0):
        self.routes = routes
        self.calls: list[tuple[str, dict]] = []
        self.chunk_delay = chunk_delay
        self.disconnected = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self, method: str):
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else {}
                key = f"{method} {self.path}"
                stub.calls.append((key, body))
                handler = stub.routes.get(key)
                if handler is None:
                    return self._send(404, {"error": {"message": "not found"}})
                status, out, *headers = handler(body)
                self._send(status, out, dict(headers[0]) if headers else {})

            def _send(self, status: int, out, headers: dict | None = None):
                if isinstance(out, list):
                    self.send_response(status)
                    self.send_header("content-type", "text/event-stream")
                    self.send_header("connection", "close")
                    self.end_headers()
                    try:
                        for event in out:
                            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                            self.wfile.flush()
                            time.sleep(stub.chunk_delay)
                        self.wfile.write(b"data: [DONE]\n\n")
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        stub.disconnected.set()
                    self.close_connection = True
                    return
                data = (json.dumps(out) if isinstance(out, dict) else str(out)).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json" if isinstance(out, dict) else "text/html")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        # serve_forever looks for shutdown() every poll_interval: its default (0.5 s) was most of each test's time.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> "Stub":
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def count(self, key: str) -> int:
        return sum(1 for k, _ in self.calls if k == key)


def models(*ids: str, **extra):
    return lambda body: (200, {"object": "list", "data": [{"id": i, "object": "model", **extra} for i in ids]})


def chunks(pieces: list[str], usage: dict | None = None) -> list[dict]:
    """A chat completion streamed as OpenAI does: a role, the pieces, a finish, then the usage."""
    out = [{"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
    out += [{"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    out.append({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage:
        out.append({"object": "chat.completion.chunk", "choices": [], "usage": usage})
    return out
