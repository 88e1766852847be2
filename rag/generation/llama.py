"""Text generation: the llama.cpp model behind a small protocol, and a fake for tests."""

from __future__ import annotations

import codecs
import ctypes
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from rag.errors import ModelError

# A snapshot of the KV cache is kept before it is overwritten only when it holds at least this many
# tokens (shorter prompts are cheaper to recompute than to copy), and restored only when it saves at
# least RESTORE_GAIN more tokens than what the live cache already shares with the new prompt.
SNAPSHOT_MIN_TOKENS = 256
RESTORE_GAIN = 32
# Prefixes shorter than this are not worth a file in the disk prompt cache.
DISK_MIN_TOKENS = 32


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


class LlamaGenerator:
    """One llama.cpp model per process; calls are serialised because a Llama object is not thread-safe.

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
                 snapshots: int = 2):
        from rag.generation.prompt_cache import SnapshotCache

        self.model_path = Path(model_path)
        self.name = self.model_path.name
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_batch = n_batch
        self.n_ubatch = n_ubatch or n_batch
        self.flash_attn = flash_attn
        self.prompt_cache_dir = Path(prompt_cache_dir) if prompt_cache_dir else None
        self.prompt_cache = None  # a rag.generation.prompt_cache.PromptCache once the model is loaded
        self.snapshots = SnapshotCache(max_entries=snapshots)
        # A plain Lock, not an RLock: Gradio resumes a streaming generator on whichever worker thread
        # is free, and an RLock released from another thread than its owner raises and stays held.
        self.lock = threading.Lock()
        self._load_lock = threading.Lock()
        self.load_s = 0.0
        self.last_stats = GenerationStats()
        self._llm = None
        self._formatter = None
        self._pieces: dict[int, bytes] = {}
        self._prefix_memo: dict[tuple, list[int]] = {}

    @property
    def llm(self):
        if self._llm is None:
            with self._load_lock:
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
                n_ubatch=self.n_ubatch,
                flash_attn=self.flash_attn,
                # llama.cpp copies the tensors it repacks for faster kernels; a mapped file would keep
                # both copies resident (docs/performance.md, step 4). Reading it costs about 0.1 s.
                use_mmap=False,
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
        llm = self.llm
        result = self._formatter(messages=messages)
        return llm.tokenize(result.prompt.encode("utf-8"), add_bos=not getattr(result, "added_special", False), special=True)

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
        return tokens[: _common_prefix(rendered, tokens)]

    def warm(self, messages: list[dict]) -> int:
        """Put the stable prefix of this chat into the KV cache now (from disk, or computed and
        saved); returns its length. Lets a server pay for it before its first user does."""
        with self.lock:
            tokens = self.render(messages)
            prefix = self.stable_prefix(messages, tokens)
            self._prepare_kv(tokens, prefix)
            return len(prefix)

    def reset(self) -> None:
        """Forget the KV cache and the RAM snapshots, as a fresh process starts (cold measurements)."""
        with self.lock:
            self._clear_kv()
            self.snapshots = type(self.snapshots)(max_entries=self.snapshots.max_entries, max_bytes=self.snapshots.max_bytes)

    # --- KV cache management -----------------------------------------------------------------

    def _clear_kv(self) -> None:
        llm = self.llm
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        llm.n_tokens = 0
        llm._requires_eval = True

    def _prepare_kv(self, tokens: list[int], prefix: list[int]) -> tuple[int, str, int]:
        """Bring the KV cache as close to `tokens` as the live cache, a RAM snapshot or the disk
        allow, and make sure it holds `prefix`. Returns (tokens restored, "ram"/"disk"/"",
        prefix tokens evaluated here)."""
        llm = self.llm
        held = _common_prefix(llm._input_ids, tokens)
        index, snap_len = self.snapshots.best(tokens, _common_prefix)
        restore_snapshot = snap_len >= held + RESTORE_GAIN and snap_len >= len(prefix)
        if held >= len(prefix) and not restore_snapshot:
            return 0, "", 0
        # The live cache is about to be replaced by another prompt: keep it to come back to.
        if llm.n_tokens >= SNAPSHOT_MIN_TOKENS and held < len(prefix) and not self.snapshots.holds(llm._input_ids):
            data = _seq_get(llm)
            if data is not None:
                self.snapshots.put(llm._input_ids.tolist(), data)
                index, snap_len = self.snapshots.best(tokens, _common_prefix)
        if restore_snapshot:
            snap_tokens, data = self.snapshots.take(index)
            if _seq_set(llm, data, snap_tokens):
                return snap_len, "ram", 0
            self._clear_kv()
            held = 0
        if held >= len(prefix):
            return 0, "", 0
        cache = self.prompt_cache if len(prefix) >= DISK_MIN_TOKENS else None
        if cache is not None and cache.load(prefix, lambda path: _seq_load_file(llm, path, self.n_ctx)):
            return len(prefix), "disk", 0
        # Evaluated on its own (never fused with the question) so the KV values are the same
        # whether they come from disk or not: a cached run answers exactly like an uncached one.
        held = _common_prefix(llm._input_ids, prefix)  # a failed restore leaves the cache empty
        llm.n_tokens = held
        llm.eval(prefix[held:])
        llm._requires_eval = True
        if cache is not None:
            cache.save(prefix, lambda path: _seq_save_file(llm, path, prefix))
        return 0, "", len(prefix) - held

    def _greedy(self, tokens: list[int], reuse: int) -> Iterator[int]:
        """Greedy decoding straight from the logits. The library's sampler chain copies all 151,936
        candidates into a new array for every token (0.8 ms here, 2-5% of a decode step); an
        argmax over the logits picks the same token in 0.06 ms."""
        import llama_cpp

        llm = self.llm
        n_vocab = llm.n_vocab()
        llm.n_tokens = reuse
        llm.eval(tokens[reuse:])
        while True:
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
            token = int(logits.argmax())
            yield token
            llm.eval([token])

    def _piece(self, token: int) -> bytes:
        """The bytes of one token, memoised (llama-cpp-python's detokenize uses a 32-byte buffer and
        silently cuts longer pieces)."""
        piece = self._pieces.get(token)
        if piece is None:
            import llama_cpp

            vocab = self.llm._model.vocab
            size = 64
            while True:
                buf = ctypes.create_string_buffer(size)
                n = llama_cpp.llama_token_to_piece(vocab, token, buf, size, 0, False)
                if n >= 0:
                    piece = buf.raw[:n]
                    break
                size = -n
            self._pieces[token] = piece
        return piece

    def stream(self, messages: list[dict], max_tokens: int, temperature: float = 0.0) -> Iterator[str]:
        import llama_cpp

        with self.lock:
            llm = self.llm
            tokens = self.render(messages)
            if len(tokens) + max_tokens > self.n_ctx:
                raise ModelError(f"prompt of {len(tokens)} tokens plus {max_tokens} for the answer exceeds the {self.n_ctx}-token context; lower --top-k")
            prefix = self.stable_prefix(messages, tokens)
            stats = GenerationStats(prompt_tokens=len(tokens))
            self.last_stats = stats
            ctx = llm.ctx
            llama_cpp.llama_perf_context_reset(ctx)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            vocab = llm._model.vocab
            t0 = time.perf_counter()
            at_first = None
            try:
                restored, stats.restored_from, evaluated = self._prepare_kv(tokens, prefix)
                stats.restored_tokens = min(restored, len(tokens))
                # Resume after the longest common prefix, re-evaluating one token when the whole
                # prompt is already cached (its logits are not kept).
                reuse = min(_common_prefix(llm._input_ids, tokens), len(tokens) - 1)
                stats.cached_tokens = reuse - evaluated
                first = last = 0.0
                sampled = 0
                if temperature <= 0:
                    sampled_tokens = self._greedy(tokens, reuse)
                else:
                    sampled_tokens = llm.generate(tokens, temp=temperature, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0)
                for token in sampled_tokens:
                    last = time.perf_counter()
                    sampled += 1
                    if sampled == 1:
                        first = last
                        stats.ttft_s = last - t0
                        # llama.cpp's counters up to here are the prefill, whatever batch sizes it
                        # took (a one-token prompt suffix counts as an "eval" in its books).
                        at_first = _perf(llama_cpp, ctx)
                    if llama_cpp.llama_vocab_is_eog(vocab, token):
                        break
                    stats.completion_tokens += 1
                    piece = decoder.decode(self._piece(token))
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
                end = _perf(llama_cpp, ctx)
                start = at_first or end
                prefill_ms, prefill_n = start[0] + start[2], start[1] + start[3]
                decode_ms, decode_n = end[2] - start[2], end[3] - start[3]
                stats.llama = {
                    "prompt_eval_ms": prefill_ms,
                    "prompt_eval_tokens": prefill_n,
                    "eval_ms": decode_ms,
                    "eval_tokens": decode_n,
                    "prefill_tps": prefill_n / prefill_ms * 1000 if prefill_ms > 0 else 0.0,
                    "decode_tps": decode_n / decode_ms * 1000 if decode_ms > 0 else 0.0,
                }


def _perf(llama_cpp, ctx) -> tuple[float, int, float, int]:
    """llama.cpp's counters since the last reset: (prompt ms, prompt tokens, eval ms, eval tokens)."""
    p = llama_cpp.llama_perf_context(ctx)
    # llama.cpp reports max(1, n) for both counts: a count with no time behind it is a zero.
    return p.t_p_eval_ms, p.n_p_eval if p.t_p_eval_ms > 0 else 0, p.t_eval_ms, p.n_eval if p.t_eval_ms > 0 else 0


# --- llama.cpp sequence state (sequence 0 is the only one llama-cpp-python's Llama uses) ---------

def _seq_get(llm):
    """The KV state of the sequence as a ctypes buffer (kept as is: copying tens of MB costs ms)."""
    import llama_cpp

    size = llama_cpp.llama_state_seq_get_size(llm.ctx, 0)
    buf = (ctypes.c_uint8 * size)()
    n = llama_cpp.llama_state_seq_get_data(llm.ctx, buf, size, 0)
    if not n:
        return None
    return buf if n == size else ctypes.string_at(buf, n)


def _seq_set(llm, data, tokens: list[int]) -> bool:
    import llama_cpp

    llm._ctx.kv_cache_seq_rm(-1, 0, -1)
    buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data) if isinstance(data, bytes) else data
    if llama_cpp.llama_state_seq_set_data(llm.ctx, buf, len(data), 0) == 0:
        return False
    llm.input_ids[: len(tokens)] = tokens
    llm.n_tokens = len(tokens)
    llm._requires_eval = True  # no logits were restored: the next call must evaluate a token
    return True


def _seq_save_file(llm, path: Path, tokens: list[int]) -> bool:
    import llama_cpp

    arr = (llama_cpp.llama_token * len(tokens))(*tokens)
    return llama_cpp.llama_state_seq_save_file(llm.ctx, str(path).encode(), 0, arr, len(tokens)) > 0


def _seq_load_file(llm, path: Path, capacity: int) -> list[int] | None:
    """Load a saved sequence into an empty cache; the tokens it was saved with, or None."""
    import llama_cpp

    llm._ctx.kv_cache_seq_rm(-1, 0, -1)
    llm.n_tokens = 0
    llm._requires_eval = True
    arr = (llama_cpp.llama_token * capacity)()
    n_out = ctypes.c_size_t(0)
    if llama_cpp.llama_state_seq_load_file(llm.ctx, str(path).encode(), 0, arr, capacity, ctypes.byref(n_out)) == 0:
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        return None
    tokens = list(arr[: n_out.value])
    llm.input_ids[: len(tokens)] = tokens
    llm.n_tokens = len(tokens)
    return tokens


def _common_prefix(a, b) -> int:
    """Length of the common prefix of two token sequences (vectorised: prompts run to thousands)."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    differ = np.flatnonzero(np.asarray(a[:n], dtype=np.int64) != np.asarray(b[:n], dtype=np.int64))
    return int(differ[0]) if len(differ) else n


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
