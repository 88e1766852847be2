"""LlamaModel, the one class that talks to llama-cpp-python: nothing else reaches into the library,
and (slow tier, the real bundled model) the library behaviour it relies on still holds."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import pytest

RAG = Path(__file__).resolve().parent.parent / "rag"
# Private members of llama_cpp.Llama and its internals that rag once used.
PRIVATE = re.compile(r"\.(_ctx|_model|_input_ids|_requires_eval|_init_sampler|_sampler|_batch|_scores|_stack)\b")


def test_no_module_reaches_into_the_library_s_private_members():
    found = [f"{p.relative_to(RAG.parent)}:{n}: {line.strip()}"
             for p in sorted(RAG.rglob("*.py"))
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1) if PRIVATE.search(line)]
    assert not found, "use rag.generation.llama_adapter.LlamaModel instead:\n" + "\n".join(found)


def test_only_the_adapter_imports_llama_cpp_s_llama_class():
    users = [str(p.relative_to(RAG.parent)) for p in sorted(RAG.rglob("*.py"))
             if re.search(r"from llama_cpp import|llama_cpp\.Llama\b", p.read_text(encoding="utf-8"))]
    assert users == ["rag/generation/llama_adapter.py"]


# --- the real model ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model():
    from rag.config import Settings
    from rag.generation.llama_adapter import LlamaModel
    from rag.generation.models import resolve_model

    m = LlamaModel.load(resolve_model("default", Settings.from_env().cache_dir), n_ctx=1024, n_threads=2)
    yield m
    m.close()


def _prompts(model):
    a = model.render([{"role": "user", "content": "What is the capital of France? One word."}])
    b = model.render([{"role": "user", "content": "Write the digits from 1 to 5 separated by commas."}])
    return a, b


def _library_greedy(model, tokens) -> int:
    """The first token of the library's own sampling, made deterministic (top-k 1)."""
    return next(model.llama.generate(tokens, top_k=1, temp=1.0))


@pytest.mark.slow
def test_a_restored_state_is_evaluated_before_the_library_samples(model, tmp_path):
    """LlamaModel._forget's contract with llama-cpp-python (checked at 0.3.36): after a KV state is
    put into the cache behind `Llama`'s back, `Llama.generate` on exactly the restored prompt must
    re-evaluate a token instead of sampling from the logits of whatever was evaluated before."""
    a, b = _prompts(model)
    model.clear()
    model.evaluate(a, keep=0)
    want = model.greedy_token()
    state = bytes(model.state_get())
    assert model.state_save(tmp_path / "a.kv", a)
    model.clear()
    model.evaluate(b, keep=0)
    assert model.greedy_token() != want, "the two prompts must continue differently for this test to mean anything"

    assert model.state_set(state, a)
    assert model.cached.tolist() == a
    model.perf_reset()
    assert _library_greedy(model, a) == want, "sampled from stale logits: see LlamaModel._forget"
    assert model.perf().prompt_tokens + model.perf().eval_tokens >= 1

    model.clear()
    model.evaluate(b, keep=0)
    assert model.state_load(tmp_path / "a.kv") == a
    assert _library_greedy(model, a) == want, "sampled from stale logits after a disk restore: see LlamaModel._forget"


@pytest.mark.slow
def test_the_flag_forget_sets_is_what_stops_stale_sampling(model):
    """The premise of the test above: filled without LlamaModel._forget, the cache makes the library
    sample from stale logits. If this fails, the library now re-evaluates restored prompts by
    itself, and _forget's reset() may be reconsidered."""
    a, b = _prompts(model)
    model.clear()
    model.evaluate(a, keep=0)
    want = model.greedy_token()
    state = bytes(model.state_get())
    model.clear()
    model.evaluate(b, keep=0)
    stale = model.greedy_token()
    buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
    model.lib.llama_memory_seq_rm(model.memory, -1, 0, -1)
    assert model.lib.llama_state_seq_set_data(model.ctx, buf, len(state), 0) > 0
    model.llama.input_ids[: len(a)] = a
    model.llama.n_tokens = len(a)
    assert _library_greedy(model, a) == stale != want
    model.clear()


@pytest.mark.slow
def test_greedy_from_the_logits_picks_the_library_s_greedy_tokens(model):
    a, _ = _prompts(model)
    model.clear()
    ours = []
    for token in model.greedy(a, keep=0):
        ours.append(token)
        if len(ours) == 8:
            break
    model.clear()
    theirs = []
    for token in model.llama.generate(a, top_k=1, temp=1.0):
        theirs.append(token)
        if len(theirs) == 8:
            break
    assert ours == theirs
    assert b"".join(model.piece(t) for t in ours).decode("utf-8", "replace").strip()


@pytest.mark.slow
def test_keeping_a_prefix_evaluates_only_the_rest(model):
    a, b = _prompts(model)
    model.clear()
    model.evaluate(a, keep=0)
    shared = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    model.perf_reset()
    model.evaluate(b[shared:], keep=shared)
    perf = model.perf()
    assert model.cached.tolist() == b
    assert perf.prompt_tokens + perf.eval_tokens == len(b) - shared


@pytest.mark.slow
def test_token_texts_pieces_and_end_of_generation(model):
    eos = model.llama.token_eos()
    assert model.is_end(eos)
    assert model.eos_text and model.eos_text == model.llama.detokenize([eos], special=True).decode("utf-8")
    assert not model.is_end(model.tokenize(b"Paris", add_bos=False)[0])
    long_piece = next(t for t in range(model.n_vocab) if len(model.piece(t)) > 32)
    assert len(model.piece(long_piece)) > 32  # the library's own detokenize would cut it at 32 bytes
    assert model.render([{"role": "user", "content": "hi"}])[-1] != eos


@pytest.mark.slow
def test_greedy_with_prompt_lookup_gives_the_same_tokens_in_fewer_evaluations(model):
    """Guesses copied from the prompt are checked in one batch and only the model's own picks are
    kept: the text is plain greedy decoding's, and a copying answer takes fewer evaluations."""
    from rag.generation.lookup import prompt_lookup

    passage = ("The committee met on Tuesday in the old town hall and approved the new budget for the "
               "public library, which will open a second reading room next spring.")
    prompt = model.render([{"role": "user", "content": f"Repeat this sentence exactly: {passage}"}])

    def decode(draft, n=40):
        model.clear()
        model.perf_reset()
        out = []
        for token in model.greedy(prompt, keep=0, draft=draft):
            if model.is_end(token) or len(out) == n:
                break
            out.append(token)
        return out, model.perf()

    plain, plain_perf = decode(None)
    guessed, guessed_perf = decode(prompt_lookup)
    assert guessed == plain
    assert b"".join(model.piece(t) for t in plain).decode("utf-8", "replace").strip()
    # llama.cpp counts a batch of several tokens as prompt evaluation and a single token as one eval.
    assert guessed_perf.eval_tokens < plain_perf.eval_tokens / 2, (guessed_perf, plain_perf)
