"""Generation on an OpenAI-compatible server (llama.cpp's server, vLLM, Ollama) instead of the
in-process model: the same messages the engine would give llama.cpp, streamed back token by token,
behind the same Generator protocol, so the Assistant and its answer checks do not change."""

from __future__ import annotations

import threading
import time
from typing import Iterator

from rag.config import Settings
from rag.endpoints import Endpoint
from rag.errors import ModelError
from rag.generation.base import DeferredGenerator
from rag.generation.llama import GenerationStats
from rag.generation.models import PRESETS

# End-of-turn markers of the common chat templates (ChatML, Llama 3, Llama 2/Mistral). A server
# stops at its model's own end token; these catch a server whose template lets the model run on into
# a next turn. OpenAI's API takes at most four.
DEFAULT_STOP = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>")
# Token counts kept by text: the system prompt and the same passages are counted question after question.
COUNT_MEMO = 4096


def list_models(endpoint: Endpoint) -> list[dict]:
    """The server's models (/v1/models), retried: a server still loading its model answers late."""
    models = [m for m in endpoint.get("/v1/models").get("data") or [] if isinstance(m, dict) and m.get("id")]
    if not models:
        raise ModelError(f"{endpoint.what} at {endpoint.base} lists no model on /v1/models; load one into it")
    return models


def choose_model(endpoint: Endpoint, spec: str) -> dict:
    """The model named `spec` on the server, or its first one when `spec` names a local preset."""
    models = list_models(endpoint)
    for m in models:
        if m["id"] == spec:
            return m
    if not spec or spec in PRESETS:
        return models[0]
    names = ", ".join(m["id"] for m in models[:5])
    raise ModelError(f"{endpoint.what} at {endpoint.base} has no model {spec!r}; it serves {names} (pass one with --model)")


class RemoteGenerator:
    """A model on an OpenAI-compatible server. Thread-safe: the server batches concurrent requests,
    and each thread sees its own call's statistics in last_stats."""

    def __init__(self, endpoint: Endpoint, model: str = "", n_ctx: int = 4096, stop: tuple[str, ...] = DEFAULT_STOP):
        self.endpoint = endpoint
        entry = choose_model(endpoint, model)
        self.model = entry["id"]
        # vLLM says how long a context it serves; llama.cpp's servers do not (docs/serving.md: start
        # them with --n_ctx at least RAG_N_CTX).
        served = entry.get("max_model_len")
        self.n_ctx = min(n_ctx, served) if isinstance(served, int) and served > 0 else n_ctx
        self.name = self.model.rsplit("/", 1)[-1]
        self.stop = tuple(stop)
        self._local = threading.local()
        self._counts: dict[str, int] = {}
        self._counts_lock = threading.Lock()
        self._counter = None  # how this server counts tokens, found on first use

    @property
    def label(self) -> str:
        """The model as answers name it: its id and the server it runs on."""
        return f"{self.name} @ {self.endpoint.root.split('://', 1)[-1]}"

    @property
    def last_stats(self) -> GenerationStats:
        return getattr(self._local, "stats", None) or GenerationStats()

    # --- tokens --------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """The server's own count when it offers one (llama.cpp's servers), else a tiktoken estimate."""
        with self._counts_lock:
            known = self._counts.get(text)
        if known is not None:
            return known
        if self._counter is None:
            self._counter = self._find_counter()
        n = self._counter(text)
        with self._counts_lock:
            if len(self._counts) >= COUNT_MEMO:
                self._counts.pop(next(iter(self._counts)))
            self._counts[text] = n
        return n

    def _find_counter(self):
        endpoint = self.endpoint
        if endpoint.probe("/extras/tokenize/count", {"input": "probe", "model": self.model}) is not None:
            # llama-cpp-python's server (python -m llama_cpp.server)
            return lambda text: int(endpoint.post("/extras/tokenize/count", {"input": text, "model": self.model})["count"])
        found = endpoint.probe("/tokenize", {"content": "probe"})
        if isinstance(found, dict) and isinstance(found.get("tokens"), list):
            # llama.cpp's own llama-server
            return lambda text: len(endpoint.post("/tokenize", {"content": text})["tokens"])
        from rag.ingest.chunking import count_tokens

        return count_tokens  # cl100k: close enough to size a prompt by, with the margin build_prompt keeps

    # --- generation ----------------------------------------------------------------------------

    def stream(self, messages: list[dict], max_tokens: int, temperature: float = 0.0) -> Iterator[str]:
        stats = GenerationStats()
        self._local.stats = stats
        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature,
                "stream": True, "stream_options": {"include_usage": True}, "stop": list(self.stop)}
        t0 = time.perf_counter()
        first = last = 0.0
        chunks = 0
        usage: dict = {}
        timings: dict = {}
        held = ""
        try:
            with self.endpoint.events("/v1/chat/completions", body) as events:
                for event in events:
                    usage = event.get("usage") or usage
                    timings = event.get("timings") or timings  # llama-server's own counters
                    piece = "".join((c.get("delta") or {}).get("content") or "" for c in event.get("choices") or [])
                    if not piece:
                        continue
                    last = time.perf_counter()
                    if not chunks:
                        first = last
                        stats.ttft_s = first - t0
                    chunks += 1
                    out, held, stopped = cut_at_stop(held + piece, self.stop)
                    if out:
                        yield out
                    if stopped:
                        held = ""
                        break  # leaving the block closes the stream: the server stops generating
            if held:
                yield held
        finally:
            stats.total_s = time.perf_counter() - t0
            stats.completion_tokens = int(usage.get("completion_tokens") or chunks)
            stats.decode_s = last - first
            stats.decode_tokens = max(stats.completion_tokens - 1, 0)
            stats.cached_tokens = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or timings.get("cache_n") or 0)
            stats.llama = server_counters(timings)
        # Counted after the answer, not before it: the first token is not kept waiting for it.
        stats.prompt_tokens = int(usage.get("prompt_tokens") or sum(self.count_tokens(m.get("content") or "") for m in messages))


def cut_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, str, bool]:
    """(text to show, text held back, stopped): cut at the first stop string; hold back an ending
    that may be the start of one, until the next piece tells."""
    at = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    if at >= 0:
        return text[:at], "", True
    keep = max((k for s in stops for k in range(1, min(len(s), len(text) + 1)) if text.endswith(s[:k])), default=0)
    return text[: len(text) - keep], text[len(text) - keep:], False


def server_counters(timings: dict) -> dict:
    """llama-server's per-request timings in the names the local generator uses for llama.cpp's own."""
    if not timings:
        return {}
    prompt_ms, prompt_n = float(timings.get("prompt_ms") or 0), int(timings.get("prompt_n") or 0)
    eval_ms, eval_n = float(timings.get("predicted_ms") or 0), int(timings.get("predicted_n") or 0)
    return {
        "prompt_eval_ms": prompt_ms, "prompt_eval_tokens": prompt_n, "eval_ms": eval_ms, "eval_tokens": eval_n,
        "prefill_tps": prompt_n / prompt_ms * 1000 if prompt_ms > 0 else 0.0,
        "decode_tps": eval_n / eval_ms * 1000 if eval_ms > 0 else 0.0,
    }


def remote_generator(settings: Settings, spec: str) -> RemoteGenerator:
    """The generator for settings.llm_url: `spec` (--model) names a model the server serves, or
    is a preset name, which takes the server's first model."""
    endpoint = Endpoint(settings.llm_url, settings.llm_api_key, settings.remote_timeout_s,
                        what="the model server", setting="RAG_LLM_URL")
    return RemoteGenerator(endpoint, spec, n_ctx=settings.n_ctx)


def remote_second(settings: Settings, first: RemoteGenerator) -> DeferredGenerator | None:
    """The second model (Settings.second_model) beside a remote first one, made on first need so a
    server that is down costs nothing until a quote would be replaced: a model of the server at
    second_llm_url, or another model of llm_url's server named by its id. None when there is none
    (a preset name on llm_url's own server would be its first model again)."""
    spec = settings.second_model
    if not spec or (not settings.second_llm_url and (spec in PRESETS or spec == first.model)):
        return None
    url = settings.second_llm_url or settings.llm_url
    endpoint = Endpoint(url, settings.llm_api_key, settings.remote_timeout_s, what="the second model's server",
                        setting="RAG_SECOND_LLM_URL" if settings.second_llm_url else "RAG_LLM_URL")
    # Named before it is made (a preset by its own name: the id it stands for on the server is known only then).
    return DeferredGenerator(f"{spec.rsplit('/', 1)[-1]} @ {endpoint.root.split('://', 1)[-1]}",
                             lambda: RemoteGenerator(endpoint, spec, n_ctx=settings.n_ctx))
