"""What every generator offers the engine (the Generator protocol and its per-call stats), and a
fake one for tests; the llama.cpp generator is in rag.generation.llama."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens not evaluated in this call (KV cache, snapshot or disk)
    restored_tokens: int = 0  # of those, restored from a snapshot in RAM or the disk prompt cache
    restored_from: str = ""  # "", "ram" or "disk"
    completion_tokens: int = 0
    ttft_s: float = 0.0
    total_s: float = 0.0
    # Decode as the caller sees it: from the first sampled token to the last, over the model
    # evaluations in between (tokens sampled - 1). Left 0 by generators that don't track it.
    decode_s: float = 0.0
    decode_tokens: int = 0
    # llama.cpp's own counters for the same call, to show the wrapper's overhead.
    llama: dict = field(default_factory=dict)

    @property
    def disk_cached_tokens(self) -> int:
        return self.restored_tokens if self.restored_from == "disk" else 0

    @property
    def prefill_tps(self) -> float:
        evaluated = self.prompt_tokens - self.cached_tokens
        return evaluated / self.ttft_s if self.ttft_s > 0 and evaluated > 0 else 0.0

    @property
    def decode_tps(self) -> float:
        if self.decode_s > 0 and self.decode_tokens > 0:
            return self.decode_tokens / self.decode_s
        decode_s = self.total_s - self.ttft_s
        # The first token arrives with the prefill; the remaining ones are pure decode.
        return (self.completion_tokens - 1) / decode_s if decode_s > 0 and self.completion_tokens > 1 else 0.0


class Generator(Protocol):
    name: str
    n_ctx: int
    last_stats: GenerationStats

    def count_tokens(self, text: str) -> int: ...

    def stream(self, messages: list[dict], max_tokens: int, temperature: float = 0.0) -> Iterator[str]: ...



class DeferredGenerator:
    """A generator made on its first call (a preset assembled and loaded then), so a process that
    never needs it pays nothing; a failure to make it is kept and raised again at once."""

    def __init__(self, name: str, make: Callable[[], Generator]):
        self.name = name
        self._make = make
        self._inner: Generator | None = None
        self._error: Exception | None = None
        self._lock = threading.Lock()

    def generator(self) -> Generator:
        with self._lock:
            if self._inner is None and self._error is None:
                try:
                    self._inner = self._make()
                except Exception as e:  # noqa: BLE001 - kept, and raised to every caller
                    self._error = e
            if self._error is not None:
                raise self._error.with_traceback(None)  # raised again without the frames it gathered last time
            return self._inner

    def stream(self, messages: list[dict], max_tokens: int, temperature: float = 0.0) -> Iterator[str]:
        return self.generator().stream(messages, max_tokens, temperature)

    def __getattr__(self, name: str):  # count_tokens, last_stats, n_ctx: the made generator's
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.generator(), name)


class FakeGenerator:
    """Replies from a list, in order (the last one repeats); records every prompt it receives."""

    name = "fake"
    n_ctx = 4096

    def __init__(self, replies: list[str] | None = None, fail_after: int | None = None):
        self.replies = list(replies or ["The documents say so [1]."])
        self.calls: list[list[dict]] = []
        self.fail_after = fail_after
        self.last_stats = GenerationStats()
        self.lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    def stream(self, messages: list[dict], max_tokens: int, temperature: float = 0.0) -> Iterator[str]:
        with self.lock:
            self.calls.append(messages)
            reply = self.replies[min(len(self.calls) - 1, len(self.replies) - 1)]
        prompt_tokens = sum(self.count_tokens(m["content"]) for m in messages)
        self.last_stats = GenerationStats(prompt_tokens=prompt_tokens)
        t0 = time.perf_counter()
        words = reply.split(" ")
        for i, w in enumerate(words[:max_tokens]):
            if self.fail_after is not None and i >= self.fail_after:
                raise RuntimeError("fake generator failure")
            if i == 0:
                self.last_stats.ttft_s = time.perf_counter() - t0
            self.last_stats.completion_tokens += 1
            yield w if i == 0 else " " + w
        self.last_stats.total_s = time.perf_counter() - t0
