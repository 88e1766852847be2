"""One llama.cpp model and its context behind a small class, on llama-cpp-python's public API only.

The generator and `rag bench` need more than `Llama.__call__` offers (prefix KV reuse, saved and
restored KV states, greedy decoding straight from the logits, llama.cpp's own timers); they get it
here, from `Llama`'s public methods and attributes and the library's public ctypes bindings
(`llama_cpp.llama_cpp`), never from its private fields. The one place that depends on how `Llama`
keeps its books about the KV cache is `LlamaModel._forget`, checked by a slow test.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np

from rag.errors import ModelError


class Perf(NamedTuple):
    """llama.cpp's counters since the last reset: prompt (batch) evaluation and one-token evaluation."""

    prompt_ms: float
    prompt_tokens: int
    eval_ms: float
    eval_tokens: int


class LlamaModel:
    """A loaded GGUF model, its one KV cache (sequence 0) and the token bookkeeping around it.

    Not thread-safe, like the `Llama` object it owns: callers serialise their calls.
    """

    def __init__(self, llama, path: Path):
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.llama = llama
        self.path = Path(path)
        self.lib = llama_cpp
        self.ctx = llama.ctx
        self.vocab = llama_cpp.llama_model_get_vocab(llama.model)
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.n_ctx = llama.n_ctx()
        self.n_vocab = llama.n_vocab()
        self._pieces: dict[int, bytes] = {}
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelError(f"{self.path.name} has no chat template; use an instruct GGUF model")
        self.eos_text = self.token_text(llama.token_eos())
        self.bos_text = self.token_text(llama.token_bos()) if llama.token_bos() >= 0 else ""
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=self.eos_text, bos_token=self.bos_text)

    @classmethod
    def load(cls, path: Path, n_ctx: int = 4096, n_threads: int = 2, n_batch: int = 512, n_ubatch: int | None = None,
             flash_attn: bool = True, use_mmap: bool = False) -> LlamaModel:
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise ModelError(f"llama-cpp-python is not installed ({e}); run scripts/setup.sh") from None
        try:
            llama = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                # Both phases use every core; the library default for decode is half of them.
                n_threads=n_threads,
                n_threads_batch=n_threads,
                n_batch=n_batch,
                n_ubatch=min(n_ubatch or n_batch, n_batch),
                flash_attn=flash_attn,
                # llama.cpp copies the tensors it repacks for faster kernels; a mapped file would keep
                # both copies resident (docs/performance.md, step 4). Reading it costs about 0.1 s.
                use_mmap=use_mmap,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as e:
            raise ModelError(f"llama.cpp could not load {path} ({e}); check the file or choose another --model") from None
        try:
            return cls(llama, path)
        except ModelError:
            llama.close()
            raise

    def close(self) -> None:
        self.llama.close()

    # --- text and tokens -----------------------------------------------------------------------

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return self.llama.tokenize(text, add_bos=add_bos, special=special)

    def render(self, messages: list[dict]) -> list[int]:
        """Prompt tokens for a chat, through the model's own chat template."""
        result = self._formatter(messages=messages)
        return self.tokenize(result.prompt.encode("utf-8"), add_bos=not getattr(result, "added_special", False), special=True)

    def token_text(self, token: int) -> str:
        """A token's text as the vocabulary spells it (special tokens included)."""
        return self.lib.llama_vocab_get_text(self.vocab, token).decode("utf-8")

    def piece(self, token: int) -> bytes:
        """The bytes of one token, memoised (`Llama.detokenize` uses a 32-byte buffer and silently
        cuts longer pieces)."""
        piece = self._pieces.get(token)
        if piece is None:
            size = 64
            while True:
                buf = ctypes.create_string_buffer(size)
                n = self.lib.llama_token_to_piece(self.vocab, token, buf, size, 0, False)
                if n >= 0:
                    piece = buf.raw[:n]
                    break
                size = -n
            self._pieces[token] = piece
        return piece

    def is_end(self, token: int) -> bool:
        """End of generation (end of turn or of text)."""
        return self.lib.llama_vocab_is_eog(self.vocab, token)

    # --- evaluation ----------------------------------------------------------------------------

    @property
    def cached(self) -> np.ndarray:
        """The tokens the KV cache holds, in order (a view: copy it to keep it)."""
        return self.llama.input_ids[: self.llama.n_tokens]

    def evaluate(self, tokens: Sequence[int], keep: int | None = None) -> None:
        """Keep the first `keep` cached tokens (all when None), drop the rest, evaluate `tokens` after them."""
        if keep is not None:
            self.llama.n_tokens = min(keep, self.llama.n_tokens)
        self.llama.eval(tokens)  # removes the cache entries past n_tokens itself

    def last_logits(self) -> np.ndarray:
        """The next token's logits after the last evaluation (a view into llama.cpp's buffer)."""
        return np.ctypeslib.as_array(self.lib.llama_get_logits_ith(self.ctx, -1), shape=(self.n_vocab,))

    def greedy_token(self) -> int:
        """The most likely next token, an argmax over the last logits. The library's sampler chain
        copies all 151,936 candidates into a new array for every token (0.8 ms here, 2-5% of a
        decode step); the argmax picks the same token in 0.06 ms."""
        return int(self.last_logits().argmax())

    def greedy(self, tokens: Sequence[int], keep: int, draft: Callable[[list[int]], list[int]] | None = None) -> Iterator[int]:
        """Greedy tokens after `tokens`, of which the first `keep` are in the cache (keep < len(tokens):
        the logits of the last prompt token must be computed here).

        With `draft` (history -> guessed next tokens, e.g. rag.generation.lookup.prompt_lookup), each
        step evaluates the new token and the guess in one batch and keeps the guessed tokens the
        model would have picked itself: the same greedy text, in fewer, larger evaluations
        (speculative decoding with the prompt as the draft model)."""
        self.evaluate(tokens[keep:], keep)
        token = self.greedy_token()
        history = list(tokens)
        while True:
            yield token
            history.append(token)
            # A guess never runs past the context (the caller leaves room for max_tokens, not for guesses).
            guess = draft(history)[: self.n_ctx - self.llama.n_tokens - 1] if draft is not None else []
            if not guess:
                self.evaluate([token])
                token = self.greedy_token()
                continue
            picks = self.evaluate_all([token, *guess])
            n = 0
            while n < len(guess) and picks[n] == guess[n]:
                n += 1
            for t in guess[:n]:
                yield t
                history.append(t)
            # The cache holds the rejected guesses too: forget them (the next evaluation drops them).
            self.llama.n_tokens -= len(guess) - n
            token = picks[n]

    def evaluate_all(self, tokens: Sequence[int]) -> list[int]:
        """Evaluate `tokens` after the cache in one batch and return the greedy pick after each of
        them. `Llama.eval` keeps only the last token's logits (unless the whole context keeps them
        all, n_ctx x n_vocab floats, 2.5 GB here), so the batch is built with the public bindings."""
        lib, n, start = self.lib, len(tokens), self.llama.n_tokens
        if start + n > self.n_ctx:
            raise ModelError(f"the answer reached the {self.n_ctx}-token context; lower --top-k")
        lib.llama_memory_seq_rm(self.memory, -1, start, -1)
        batch = lib.llama_batch_init(n, 0, 1)
        try:
            for i, t in enumerate(tokens):
                batch.token[i] = t
                batch.pos[i] = start + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = True
            batch.n_tokens = n
            if lib.llama_decode(self.ctx, batch) != 0:
                raise ModelError("llama.cpp failed to evaluate a batch of guessed tokens")
        finally:
            lib.llama_batch_free(batch)
        self.llama.input_ids[start:start + n] = tokens
        self.llama.n_tokens = start + n
        logits = np.ctypeslib.as_array(lib.llama_get_logits(self.ctx), shape=(n, self.n_vocab))
        return logits.argmax(axis=1).tolist()

    def sample(self, tokens: Sequence[int], temperature: float) -> Iterator[int]:
        """Sampled tokens after `tokens` through the library's sampler chain; it resumes after the
        longest prefix of `tokens` the cache holds."""
        return self.llama.generate(tokens, temp=temperature, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0)

    # --- the KV cache (sequence 0, the only one `Llama` uses) ------------------------------------

    def _forget(self) -> None:
        """Empty the KV cache and the `Llama` object's record of it.

        Checked against llama-cpp-python 0.3.36, where `Llama` mirrors the cache in the public
        `input_ids`/`n_tokens` and in a private flag saying whether the current logits belong to the
        last cached token. `Llama.generate` samples at once from the current logits when the whole
        prompt is cached and that flag is clear, so after the cache is filled behind its back (a
        restored state carries no logits) the flag must be set, or it samples from the previous
        prompt's logits. `Llama.reset()` is the public way to set it (it also sets n_tokens to 0;
        for recurrent or hybrid models it clears the memory too, so it is called before a state is
        put in, never after). tests/test_llama_adapter.py fails if an upgrade changes this.
        """
        self.llama.reset()
        if self.memory is not None:
            self.lib.llama_memory_seq_rm(self.memory, -1, 0, -1)

    def _record(self, tokens: Sequence[int]) -> None:
        """Tell `Llama` which tokens the (just filled) KV cache holds, so it can resume after them."""
        self.llama.input_ids[: len(tokens)] = tokens
        self.llama.n_tokens = len(tokens)

    def clear(self) -> None:
        self._forget()

    def state_get(self):
        """The KV state of the sequence as a ctypes buffer (kept as is: copying tens of MB costs ms),
        or None."""
        size = self.lib.llama_state_seq_get_size(self.ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        n = self.lib.llama_state_seq_get_data(self.ctx, buf, size, 0)
        if not n:
            return None
        return buf if n == size else ctypes.string_at(buf, n)

    def state_set(self, data, tokens: Sequence[int]) -> bool:
        """Replace the cache by a state from state_get() holding `tokens`; False (cache empty) on failure."""
        self._forget()
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data) if isinstance(data, bytes) else data
        if self.lib.llama_state_seq_set_data(self.ctx, buf, len(data), 0) == 0:
            self._forget()
            return False
        self._record(tokens)
        return True

    def state_save(self, path: Path, tokens: Sequence[int]) -> bool:
        """Write the state of the cache, which holds exactly `tokens`, to a file."""
        arr = (self.lib.llama_token * len(tokens))(*tokens)
        return self.lib.llama_state_seq_save_file(self.ctx, str(path).encode(), 0, arr, len(tokens)) > 0

    def state_load(self, path: Path) -> list[int] | None:
        """Replace the cache by a state file; the tokens it was saved with, or None (cache empty)."""
        self._forget()
        arr = (self.lib.llama_token * self.n_ctx)()
        n_out = ctypes.c_size_t(0)
        if self.lib.llama_state_seq_load_file(self.ctx, str(path).encode(), 0, arr, self.n_ctx, ctypes.byref(n_out)) == 0:
            self._forget()
            return None
        tokens = list(arr[: n_out.value])
        self._record(tokens)
        return tokens

    # --- llama.cpp's own timers ----------------------------------------------------------------

    def perf_reset(self) -> None:
        # llama.cpp books queued work when it is awaited: await it first, or the next reading
        # counts tokens evaluated before the reset.
        self.lib.llama_synchronize(self.ctx)
        self.lib.llama_perf_context_reset(self.ctx)

    def perf(self) -> Perf:
        """llama.cpp's counters since the last reset, once the work queued so far is done."""
        self.lib.llama_synchronize(self.ctx)
        p = self.lib.llama_perf_context(self.ctx)
        # llama.cpp reports max(1, n) for both counts: a count with no time behind it is a zero.
        return Perf(p.t_p_eval_ms, p.n_p_eval if p.t_p_eval_ms > 0 else 0, p.t_eval_ms, p.n_eval if p.t_eval_ms > 0 else 0)
