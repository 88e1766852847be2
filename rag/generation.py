"""Text generation: the llama.cpp model behind a small protocol, and a fake for tests."""

from __future__ import annotations

import codecs
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

from rag.errors import ModelError


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens reused from the KV cache (not recomputed)
    completion_tokens: int = 0
    ttft_s: float = 0.0
    total_s: float = 0.0
    # llama.cpp's own counters for the same call, to show the wrapper's overhead.
    llama: dict = field(default_factory=dict)

    @property
    def prefill_tps(self) -> float:
        evaluated = self.prompt_tokens - self.cached_tokens
        return evaluated / self.ttft_s if self.ttft_s > 0 and evaluated > 0 else 0.0

    @property
    def decode_tps(self) -> float:
        decode_s = self.total_s - self.ttft_s
        # The first token arrives with the prefill; the remaining ones are pure decode.
        return (self.completion_tokens - 1) / decode_s if decode_s > 0 and self.completion_tokens > 1 else 0.0


class Generator(Protocol):
    name: str
    n_ctx: int
    last_stats: GenerationStats

    def count_tokens(self, text: str) -> int: ...

    def stream(self, messages: list[dict], max_tokens: int, temperature: float = 0.0) -> Iterator[str]: ...


class LlamaGenerator:
    """One llama.cpp model per process; calls are serialised because a Llama object is not thread-safe."""

    def __init__(self, model_path: Path, n_ctx: int = 4096, n_threads: int = 2, n_batch: int = 512, flash_attn: bool = True):
        self.model_path = Path(model_path)
        self.name = self.model_path.name
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_batch = n_batch
        self.flash_attn = flash_attn
        self.lock = threading.Lock()
        self.load_s = 0.0
        self.last_stats = GenerationStats()
        self._llm = None
        self._formatter = None

    @property
    def llm(self):
        if self._llm is None:
            with self.lock:
                if self._llm is None:
                    self._load()
        return self._llm

    def _load(self) -> None:
        t0 = time.perf_counter()
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as e:
            raise ModelError(f"llama-cpp-python is not installed ({e}); run scripts/setup.sh") from None
        try:
            llm = Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                # Both phases use every core; the library default for decode is half of them.
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                n_batch=self.n_batch,
                n_ubatch=self.n_batch,
                flash_attn=self.flash_attn,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as e:
            raise ModelError(f"llama.cpp could not load {self.model_path} ({e}); check the file or choose another --model") from None
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelError(f"{self.model_path.name} has no chat template; use an instruct GGUF model")
        eos = llm._model.token_get_text(llm.token_eos())
        bos = llm._model.token_get_text(llm.token_bos()) if llm.token_bos() >= 0 else ""
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        self._llm = llm
        self.load_s = time.perf_counter() - t0

    def render(self, messages: list[dict]) -> list[int]:
        """Prompt tokens for a chat, through the model's own chat template."""
        llm = self.llm
        result = self._formatter(messages=messages)
        return llm.tokenize(result.prompt.encode("utf-8"), add_bos=not getattr(result, "added_special", False), special=True)

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(self, messages: list[dict], max_tokens: int, temperature: float = 0.0) -> Iterator[str]:
        import llama_cpp

        with self.lock:
            llm = self.llm
            tokens = self.render(messages)
            if len(tokens) + max_tokens > self.n_ctx:
                raise ModelError(f"prompt of {len(tokens)} tokens plus {max_tokens} for the answer exceeds the {self.n_ctx}-token context; lower --top-k")
            stats = GenerationStats(prompt_tokens=len(tokens), cached_tokens=_common_prefix(llm._input_ids, tokens))
            self.last_stats = stats
            ctx = llm._ctx.ctx
            llama_cpp.llama_perf_context_reset(ctx)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            vocab = llm._model.vocab
            t0 = time.perf_counter()
            try:
                for token in llm.generate(tokens, temp=temperature, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0):
                    if stats.completion_tokens == 0:
                        stats.ttft_s = time.perf_counter() - t0
                    if llama_cpp.llama_vocab_is_eog(vocab, token):
                        break
                    stats.completion_tokens += 1
                    piece = decoder.decode(llm.detokenize([token]))
                    if piece:
                        yield piece
                    if stats.completion_tokens >= max_tokens:
                        break
                tail = decoder.decode(b"", final=True)
                if tail:
                    yield tail
            finally:
                stats.total_s = time.perf_counter() - t0
                perf = llama_cpp.llama_perf_context(ctx)
                stats.llama = {
                    "prompt_eval_ms": perf.t_p_eval_ms,
                    "prompt_eval_tokens": perf.n_p_eval,
                    "eval_ms": perf.t_eval_ms,
                    "eval_tokens": perf.n_eval,
                    "prefill_tps": perf.n_p_eval / perf.t_p_eval_ms * 1000 if perf.t_p_eval_ms > 0 else 0.0,
                    "decode_tps": perf.n_eval / perf.t_eval_ms * 1000 if perf.t_eval_ms > 0 else 0.0,
                }


def _common_prefix(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


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
