"""Text generation with a llama.cpp model: prefix reuse, the disk prompt cache and RAM snapshots around
rag.generation.llama_adapter.LlamaModel (the only code that talks to llama-cpp-python)."""

from __future__ import annotations

import codecs
import threading
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Iterator

import numpy as np

from rag.errors import ModelError
from rag.generation.base import FakeGenerator, GenerationStats, Generator  # noqa: F401 - their old import path
from rag.generation.llama_adapter import LlamaModel, Perf
from rag.generation.lookup import prompt_lookup
from rag.generation.turns import turn_for

# A snapshot of the KV cache is kept before it is overwritten only when it holds at least this many
# tokens (shorter prompts are cheaper to recompute than to copy), and restored only when it saves at
# least RESTORE_GAIN more tokens than what the live cache already shares with the new prompt.
SNAPSHOT_MIN_TOKENS = 256
RESTORE_GAIN = 32
# Prefixes shorter than this are not worth a file in the disk prompt cache.
DISK_MIN_TOKENS = 32


class LlamaGenerator:
    """One llama.cpp model per process; calls are serialised because the model is not thread-safe.

    Prefill dominates the time to first token on a small CPU, so no prompt token is evaluated twice
    if it can be avoided:
    - the KV cache keeps the previous call's tokens and llama.cpp resumes after the longest common
      prefix (a follow-up that extends the previous prompt pays only for its new tokens);
    - the stable prefix of a chat (every message but the last, when it starts with a system
      message: the system prompt and its worked examples) is evaluated on its own and its KV state
      saved under `prompt_cache_dir`, so a fresh process restores it from disk in milliseconds;
    - before a prompt of another shape (the follow-up rewrite) replaces the KV cache, the cache is
      snapshotted in RAM, and the next answer prompt resumes from it.
    """

    def __init__(self, model_path: Path, n_ctx: int = 4096, n_threads: int = 2, n_batch: int = 512,
                 flash_attn: bool = True, n_ubatch: int | None = None, prompt_cache_dir: Path | None = None,
                 snapshots: int = 2, lookup_tokens: int = 0, turns_dir: Path | None = None):
        from rag.generation.prompt_cache import SnapshotCache

        self.model_path = Path(model_path)
        self.name = self.model_path.name
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_batch = n_batch
        self.n_ubatch = n_ubatch or n_batch
        self.flash_attn = flash_attn
        # The guesser greedy decoding checks in batches (rag.generation.lookup); None: a token at a time.
        self.draft = partial(prompt_lookup, max_tokens=lookup_tokens) if lookup_tokens > 0 else None
        self.prompt_cache_dir = Path(prompt_cache_dir) if prompt_cache_dir else None
        self.prompt_cache = None  # a rag.generation.prompt_cache.PromptCache once the model is loaded
        self.snapshots = SnapshotCache(max_entries=snapshots)
        # A plain Lock, not an RLock: Gradio resumes a streaming generator on whichever worker thread
        # is free, and an RLock released from another thread than its owner raises and stays held.
        self.lock = threading.Lock()
        # Across processes: one generation at a time on this machine (rag.generation.turns), when
        # given a folder for the lock file and using every core.
        self.turn = turn_for(turns_dir, n_threads) if turns_dir is not None else None
        self._load_lock = threading.Lock()
        self.load_s = 0.0
        self.last_stats = GenerationStats()
        self._llm: LlamaModel | None = None
        self._prefix_memo: dict[tuple, list[int]] = {}

    @property
    def llm(self) -> LlamaModel:
        if self._llm is None:
            with self._load_lock:
                if self._llm is None:
                    self._load()
        return self._llm

    def _load(self) -> None:
        t0 = time.perf_counter()
        llm = LlamaModel.load(self.model_path, n_ctx=self.n_ctx, n_threads=self.n_threads, n_batch=self.n_batch,
                              n_ubatch=self.n_ubatch, flash_attn=self.flash_attn)
        if self.prompt_cache_dir is not None:
            self.prompt_cache = self._open_prompt_cache()
        self._llm = llm
        self.load_s = time.perf_counter() - t0

    def _open_prompt_cache(self):
        import llama_cpp

        from rag.generation.prompt_cache import PromptCache, cached_model_sha256

        fingerprint = {
            "model_sha256": cached_model_sha256(self.model_path, self.prompt_cache_dir),
            "n_ctx": self.n_ctx,
            # Without flash attention llama.cpp stores V transposed: the layouts are not interchangeable.
            "flash_attn": self.flash_attn,
            "llama_cpp": llama_cpp.__version__,
        }
        return PromptCache(self.prompt_cache_dir, fingerprint)

    def render(self, messages: list[dict]) -> list[int]:
        """Prompt tokens for a chat, through the model's own chat template."""
        return self.llm.render(messages)

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stable_prefix(self, messages: list[dict], tokens: list[int]) -> list[int]:
        """The tokens of `tokens` that render every message but the last (none if the chat does not
        start with a system message: without one nothing is known to be stable)."""
        if len(messages) < 2 or messages[0].get("role") != "system":
            return []
        key = tuple((m.get("role"), m.get("content")) for m in messages[:-1])
        rendered = self._prefix_memo.get(key)
        if rendered is None:
            rendered = self.render(messages[:-1])
            if len(self._prefix_memo) > 16:
                self._prefix_memo.clear()
            self._prefix_memo[key] = rendered
        return tokens[: common_prefix(rendered, tokens)]

    def _turn(self):
        return self.turn.held() if self.turn is not None else nullcontext()

    def warm(self, messages: list[dict]) -> int:
        """Put the stable prefix of this chat into the KV cache now (from disk, or computed and
        saved); returns its length. Lets a server pay for it before its first user does."""
        with self.lock, self._turn():
            tokens = self.render(messages)
            prefix = self.stable_prefix(messages, tokens)
            self._prepare_kv(tokens, prefix)
            return len(prefix)

    def reset(self) -> None:
        """Forget the KV cache and the RAM snapshots, as a fresh process starts (cold measurements)."""
        with self.lock:
            self.llm.clear()
            self.snapshots = type(self.snapshots)(max_entries=self.snapshots.max_entries, max_bytes=self.snapshots.max_bytes)

    def _prepare_kv(self, tokens: list[int], prefix: list[int]) -> tuple[int, str, int]:
        """Bring the KV cache as close to `tokens` as the live cache, a RAM snapshot or the disk
        allow, and make sure it holds `prefix`. Returns (tokens restored, "ram"/"disk"/"",
        prefix tokens evaluated here)."""
        llm = self.llm
        held = common_prefix(llm.cached, tokens)
        index, snap_len = self.snapshots.best(tokens, common_prefix)
        restore_snapshot = snap_len >= held + RESTORE_GAIN and snap_len >= len(prefix)
        if held >= len(prefix) and not restore_snapshot:
            return 0, "", 0
        # The live cache is about to be replaced by another prompt: keep it to come back to.
        live = llm.cached
        if len(live) >= SNAPSHOT_MIN_TOKENS and held < len(prefix) and not self.snapshots.holds(live):
            data = llm.state_get()
            if data is not None:
                self.snapshots.put(live.tolist(), data)
                index, snap_len = self.snapshots.best(tokens, common_prefix)
        if restore_snapshot:
            snap_tokens, data = self.snapshots.take(index)
            if llm.state_set(data, snap_tokens):
                return snap_len, "ram", 0
            held = 0
        if held >= len(prefix):
            return 0, "", 0
        cache = self.prompt_cache if len(prefix) >= DISK_MIN_TOKENS else None
        if cache is not None and cache.load(prefix, llm.state_load):
            return len(prefix), "disk", 0
        # Evaluated on its own (never fused with the question) so the KV values are the same
        # whether they come from disk or not: a cached run answers exactly like an uncached one.
        held = common_prefix(llm.cached, prefix)  # a failed restore leaves the cache empty
        llm.evaluate(prefix[held:], keep=held)
        if cache is not None:
            cache.save(prefix, lambda path: llm.state_save(path, prefix))
        return 0, "", len(prefix) - held

    def stream(self, messages: list[dict], max_tokens: int, temperature: float = 0.0) -> Iterator[str]:
        with self.lock, self._turn():
            llm = self.llm
            tokens = self.render(messages)
            if len(tokens) + max_tokens > self.n_ctx:
                raise ModelError(f"prompt of {len(tokens)} tokens plus {max_tokens} for the answer exceeds the {self.n_ctx}-token context; lower --top-k")
            prefix = self.stable_prefix(messages, tokens)
            stats = GenerationStats(prompt_tokens=len(tokens))
            self.last_stats = stats
            llm.perf_reset()
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            t0 = time.perf_counter()
            at_first = None
            try:
                restored, stats.restored_from, evaluated = self._prepare_kv(tokens, prefix)
                stats.restored_tokens = min(restored, len(tokens))
                # Resume after the longest common prefix, re-evaluating one token when the whole
                # prompt is already cached (its logits are not kept).
                reuse = min(common_prefix(llm.cached, tokens), len(tokens) - 1)
                stats.cached_tokens = reuse - evaluated
                first = last = 0.0
                sampled = 0
                if temperature <= 0:
                    sampled_tokens = llm.greedy(tokens, reuse, self.draft)
                else:
                    sampled_tokens = llm.sample(tokens, temperature)
                for token in sampled_tokens:
                    last = time.perf_counter()
                    sampled += 1
                    if sampled == 1:
                        first = last
                        stats.ttft_s = last - t0
                        # llama.cpp's counters up to here are the prefill, whatever batch sizes it
                        # took (a one-token prompt suffix counts as an "eval" in its books).
                        at_first = llm.perf()
                    if llm.is_end(token):
                        break
                    stats.completion_tokens += 1
                    piece = decoder.decode(llm.piece(token))
                    if piece:
                        yield piece
                    if stats.completion_tokens >= max_tokens:
                        break
                stats.decode_s = last - first
                stats.decode_tokens = max(sampled - 1, 0)
                tail = decoder.decode(b"", final=True)
                if tail:
                    yield tail
            finally:
                stats.total_s = time.perf_counter() - t0
                stats.llama = llama_counters(at_first, llm.perf())

    def log_odds(self, messages: list[dict], yes: tuple[str, ...], no: tuple[str, ...]) -> float:
        """How much likelier the model's next word after the chat is one of `yes` than one of `no`:
        the log of the summed probabilities of their first tokens, one over the other. A score
        read from one prefill, with no token generated (rag.answer.judge)."""
        with self.lock, self._turn():
            llm = self.llm
            tokens = self.render(messages)
            if len(tokens) >= self.n_ctx:
                raise ModelError(f"a prompt of {len(tokens)} tokens exceeds the {self.n_ctx}-token context")
            self._prepare_kv(tokens, self.stable_prefix(messages, tokens))
            keep = min(common_prefix(llm.cached, tokens), len(tokens) - 1)
            llm.evaluate(tokens[keep:], keep)
            logits = llm.last_logits().astype(np.float64)
            first = lambda words: sorted({llm.tokenize(w.encode("utf-8"), add_bos=False)[0] for w in words})
            return float(np.logaddexp.reduce(logits[first(yes)]) - np.logaddexp.reduce(logits[first(no)]))


def llama_counters(at_first: Perf | None, end: Perf) -> dict:
    """llama.cpp's view of one call: prefill up to the first token, decode after it."""
    start = at_first or end
    prefill_ms, prefill_n = start.prompt_ms + start.eval_ms, start.prompt_tokens + start.eval_tokens
    decode_ms, decode_n = end.eval_ms - start.eval_ms, end.eval_tokens - start.eval_tokens
    return {
        "prompt_eval_ms": prefill_ms,
        "prompt_eval_tokens": prefill_n,
        "eval_ms": decode_ms,
        "eval_tokens": decode_n,
        "prefill_tps": prefill_n / prefill_ms * 1000 if prefill_ms > 0 else 0.0,
        "decode_tps": decode_n / decode_ms * 1000 if decode_ms > 0 else 0.0,
    }


def common_prefix(a, b) -> int:
    """Length of the common prefix of two token sequences (vectorised: prompts run to thousands)."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    differ = np.flatnonzero(np.asarray(a[:n], dtype=np.int64) != np.asarray(b[:n], dtype=np.int64))
    return int(differ[0]) if len(differ) else n
