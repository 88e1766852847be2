"""The disk prompt cache: content-addressed KV states that a changed model, setting or prompt can
never load. Fast tests drive PromptCache with fake state I/O; the slow ones use the real model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag.generation.prompt_cache import PromptCache, cached_model_sha256, prefix_key

FP = {"model_sha256": "a" * 64, "n_ctx": 4096, "flash_attn": True, "llama_cpp": "0.3.36"}


class FakeState:
    """Stands in for llama.cpp's state files: writes the tokens, reads them back."""

    def __init__(self):
        self.loaded: list[int] | None = None
        self.writes = 0

    def writer(self, tokens):
        def write(path: Path) -> bool:
            self.writes += 1
            path.write_text(",".join(map(str, tokens)))
            return True
        return write

    def read(self, path: Path):
        text = path.read_text()
        self.loaded = [int(t) for t in text.split(",")] if text else None
        return self.loaded


def test_saved_prefix_is_restored_in_a_new_cache_object(tmp_path):
    tokens = list(range(100, 400))
    state = FakeState()
    assert PromptCache(tmp_path, FP).save(tokens, state.writer(tokens)) is not None
    fresh = PromptCache(tmp_path, FP)  # as in a new process
    assert fresh.load(tokens, state.read)
    assert state.loaded == tokens
    assert (fresh.hits, fresh.misses) == (1, 0)


def test_a_changed_prompt_misses_and_never_loads_the_old_state(tmp_path):
    old = list(range(300))
    state = FakeState()
    PromptCache(tmp_path, FP).save(old, state.writer(old))
    changed = old[:-1] + [9999]  # one token of the system prompt differs
    cache = PromptCache(tmp_path, FP)
    assert not cache.load(changed, state.read)
    assert state.loaded is None
    assert cache.misses == 1


@pytest.mark.parametrize("change", [{"model_sha256": "b" * 64}, {"n_ctx": 2048}, {"flash_attn": False}, {"llama_cpp": "0.3.37"}])
def test_a_changed_model_or_setting_misses(tmp_path, change):
    tokens = list(range(300))
    state = FakeState()
    PromptCache(tmp_path, FP).save(tokens, state.writer(tokens))
    other = PromptCache(tmp_path, {**FP, **change})
    assert prefix_key({**FP, **change}, tokens) != prefix_key(FP, tokens)
    assert not other.load(tokens, state.read)
    assert state.loaded is None


def test_an_entry_that_does_not_hold_its_tokens_is_deleted(tmp_path):
    tokens = list(range(50))
    cache = PromptCache(tmp_path, FP)
    path = cache.save(tokens, FakeState().writer(tokens[:-1]))  # a wrong or truncated state
    assert path.is_file()
    assert not cache.load(tokens, FakeState().read)
    assert not path.exists() and not path.with_suffix(".json").exists()


def test_failed_write_leaves_no_entry(tmp_path):
    cache = PromptCache(tmp_path, FP)
    assert cache.save([1, 2, 3], lambda p: False) is None
    assert cache.entries() == []
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_costs_speed_not_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = PromptCache(blocker / "cache", FP)
    assert cache.save([1, 2, 3], FakeState().writer([1, 2, 3])) is None
    assert not cache.load([1, 2, 3], FakeState().read)


def test_least_recently_used_entries_are_pruned(tmp_path):
    cache = PromptCache(tmp_path, FP, max_entries=2)
    state = FakeState()
    prefixes = [[n] * 10 for n in range(3)]
    for i, p in enumerate(prefixes[:2]):
        path = cache.save(p, state.writer(p))
        os.utime(path, ns=(i * 10**9, i * 10**9))
    assert cache.load(prefixes[0], state.read)  # touching makes it the most recent
    cache.save(prefixes[2], state.writer(prefixes[2]))
    kept = set(cache.entries())
    assert kept == {cache.path_for(prefixes[0]), cache.path_for(prefixes[2])}


def test_model_hash_is_remembered_until_the_file_changes(tmp_path, monkeypatch):
    import rag.generation.models

    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"x" * 100)
    calls = []
    real = rag.generation.models.model_sha256
    monkeypatch.setattr(rag.generation.models, "model_sha256", lambda p: calls.append(p) or real(p))
    first = cached_model_sha256(model, tmp_path / "cache")
    assert cached_model_sha256(model, tmp_path / "cache") == first
    assert len(calls) == 1
    model.write_bytes(b"GGUF" + b"y" * 100)
    os.utime(model, ns=(1, 1))
    assert cached_model_sha256(model, tmp_path / "cache") != first
    assert len(calls) == 2


# --- the real model ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_path():
    from rag.config import Settings
    from rag.generation.models import resolve_model

    return resolve_model("default", Settings.from_env().cache_dir)


def _answer(gen, messages) -> str:
    return "".join(gen.stream(messages, max_tokens=12, temperature=0.0))


@pytest.mark.slow
def test_real_model_restores_the_prefix_from_disk_and_answers_the_same(tmp_path, model_path):
    from rag.generation.llama import LlamaGenerator
    from rag.generation.prompts import SYSTEM_PROMPT

    messages = [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": "Documents:\n\n[1] (from a.txt)\nThe tower is 42 metres tall.\n\nQuestion: How tall is the tower?"}]
    cache_dir = tmp_path / "prompt-cache"
    first = LlamaGenerator(model_path, n_ctx=2048, prompt_cache_dir=cache_dir)
    text1 = _answer(first, messages)
    assert first.last_stats.disk_cached_tokens == 0
    assert len(first.prompt_cache.entries()) == 1

    fresh = LlamaGenerator(model_path, n_ctx=2048, prompt_cache_dir=cache_dir)  # a new process, in effect
    text2 = _answer(fresh, messages)
    prefix = len(fresh.stable_prefix(messages, fresh.render(messages)))
    assert prefix > 30  # the system prompt, rendered by the chat template
    assert fresh.last_stats.disk_cached_tokens == prefix
    assert fresh.last_stats.llama["prompt_eval_tokens"] <= fresh.last_stats.prompt_tokens - prefix + 1
    assert text2 == text1

    # The prompt changes: the old state must not be used, a new one is computed and saved.
    changed = [{"role": "system", "content": SYSTEM_PROMPT + " Be concise."}, *messages[1:]]
    again = LlamaGenerator(model_path, n_ctx=2048, prompt_cache_dir=cache_dir)
    _answer(again, changed)
    assert again.last_stats.disk_cached_tokens == 0
    assert len(again.prompt_cache.entries()) == 2

    # A different context size is a different fingerprint: a miss, not a foreign state.
    other = LlamaGenerator(model_path, n_ctx=1024, prompt_cache_dir=cache_dir)
    _answer(other, messages)
    assert other.last_stats.disk_cached_tokens == 0


@pytest.mark.slow
def test_real_model_follow_up_reuses_the_previous_turn(tmp_path, model_path):
    from rag.generation.llama import LlamaGenerator

    gen = LlamaGenerator(model_path, n_ctx=2048, prompt_cache_dir=tmp_path / "pc")
    turn1 = [{"role": "system", "content": "You answer briefly."},
             {"role": "user", "content": "The lighthouse at Cape Vert was built in 1851 and is 31 metres tall. When was it built?"}]
    reply = _answer(gen, turn1)
    first_prompt = gen.last_stats.prompt_tokens
    turn2 = [*turn1, {"role": "assistant", "content": reply}, {"role": "user", "content": "How tall is it?"}]
    _answer(gen, turn2)
    # Everything up to the previous question is reused; only the reply and the new question are computed.
    assert gen.last_stats.cached_tokens >= first_prompt - 1
    assert gen.last_stats.llama["prompt_eval_tokens"] < gen.last_stats.prompt_tokens - first_prompt + 8
